"""iotstack: generate, start and verify IoT monitoring stacks on Docker."""

__version__ = "0.1.0"
