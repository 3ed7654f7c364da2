"""Run a rendered stack on a Docker engine: load, label, start, stop, report."""
