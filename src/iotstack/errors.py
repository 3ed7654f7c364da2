"""The few named errors iotstack raises; the CLI maps each to an exit code."""

from __future__ import annotations


class IotstackError(Exception):
    """Base class: a failure the user can act on, shown as one line."""

    exit_code = 1


class ConfigError(IotstackError):
    """Bad user input: a config file, key or option that cannot be used."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, fix: str = ""):
        self.path = path
        self.fix = fix
        text = f"{path}: {message}" if path else message
        if fix:
            text = f"{text} — {fix}"
        super().__init__(text)


class RuntimeFailure(IotstackError):
    """The Docker engine or a service did not do what was asked."""

    exit_code = 1


class CheckFailed(IotstackError):
    """At least one smoke check failed."""

    exit_code = 1


class StackTooBig(ConfigError):
    """The stack's memory limits add up to more than its host's RAM."""

    exit_code = 2
