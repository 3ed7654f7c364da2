"""One module per command group; importing this package registers them all."""

from importlib import import_module

# Help lists the commands in the order they are registered: set-up first.
for _group in ("stack", "runtime", "check", "host", "edge"):
    import_module(f"{__name__}.{_group}")
