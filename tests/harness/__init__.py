"""Start and stop the real servers that the integration tests talk to."""
