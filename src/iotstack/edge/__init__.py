"""Edge-first pieces: topic scheme, payload contracts, model registry, edge agent."""
