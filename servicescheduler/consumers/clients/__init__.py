"""Kafka clients: kafka-python (the default) and confluent-kafka behind one surface, and the
rebalance listener that commits what was stored before partitions move."""
