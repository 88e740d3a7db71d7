"""Feature store: definitions, point-in-time-correct offline store, online store."""
