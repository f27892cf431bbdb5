"""Running: the consumer thread (worker), its supervisor with backoff, its published status and
throughput, and the wiring (pipeline)."""
