"""What iotstack wrote last time, so a file the user edited is never overwritten."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from iotstack.files import write_atomic

MANIFEST_PATH = Path(".iotstack") / "manifest.json"


def checksum(content: str | bytes) -> str:
    """The sha256 of a file's content."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


@dataclass
class Manifest:
    """Checksums of the generated files, by path relative to the stack folder."""

    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, stack_dir: Path) -> Manifest:
        """Read the manifest; an absent one means nothing was generated yet."""
        path = stack_dir / MANIFEST_PATH
        if not path.exists():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(files=dict(data.get("files", {})))

    def save(self, stack_dir: Path) -> None:
        """Write the manifest atomically; an unchanged one is left untouched."""
        data = {"version": 1, "files": dict(sorted(self.files.items()))}
        text = json.dumps(data, indent=2) + "\n"
        path = stack_dir / MANIFEST_PATH
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        write_atomic(path, text)
