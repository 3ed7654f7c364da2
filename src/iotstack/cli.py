"""The `iotstack` entry point: load the commands, map named errors to exit codes."""

from __future__ import annotations

import os

import iotstack.commands  # noqa: F401  (registers every command)
from iotstack import console
from iotstack.app import app
from iotstack.errors import IotstackError


def main() -> None:
    """Run the app; a named error becomes one line and its exit code."""
    try:
        app()
    except IotstackError as exc:
        console.error(str(exc))
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise SystemExit(130) from None
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    main()
