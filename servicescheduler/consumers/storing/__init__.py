"""Storing: one transaction per batch (events, handler rows, dead letters), handlers, the handler
watch, store-ahead and the offsets waiting for their commit."""
