"""Writing files safely: atomically, with the mode asked for."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from iotstack.errors import ConfigError


def write_atomic(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Write `content` to `path` so readers see the old or the new file, never half."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in `path`'s folder; a folder that refuses it is named."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            "is a file where iotstack needs a folder",
            path=str(path.parent),
            fix="move the file away, or choose another --dir",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path.name} here: {exc.strerror or exc}",
            path=str(path.parent),
            fix="make the folder writable, or choose another --dir",
        ) from None
