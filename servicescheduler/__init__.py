"""ServiceScheduler: periodic tasks and a durable Kafka consumer inside your FastAPI app."""
