"""The stack's model registry: model files plus manifests, served by Nginx.

Layout under `<stack>/registry/` (served at `/models/`):
`<name>/<version>/<file>`, `<name>/<version>/manifest.json` (one model
version, the same document that is announced on `iot/models/<name>`) and
`manifest.json` (every version, and the latest of each model).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotstack.edge import topics
from iotstack.edge.mqtt import Broker, connect, disconnect, publish
from iotstack.envfile import ENV_NAME, read_env
from iotstack.errors import ConfigError
from iotstack.files import write_atomic
from iotstack.plan import StackPlan

REGISTRY_DIR = "registry"
MANIFEST = "manifest.json"
CHUNK = 1 << 20


def registry_dir(stack_dir: Path, plan: StackPlan) -> Path:
    """The registry folder of a stack whose variant has one."""
    if not plan.variant.model_registry:
        raise ConfigError(
            f"variant {plan.variant.name} has no model registry",
            path=str(stack_dir / "iotstack.yaml"),
            fix="use `variant: edge-first`",
        )
    return stack_dir / REGISTRY_DIR


def publish_model(
    root: Path, source: Path, name: str, version: str, framework: str
) -> dict[str, Any]:
    """Copy a model into the registry and update the manifests; returns the entry.

    Publishing the same file again under the same version is a no-op; a
    different file under an existing version is refused, so agents never see
    one version with two checksums.
    """
    topics.check_segment(name, "model name")
    topics.check_version(version)
    if not source.is_file():
        what = "is a folder, not a model file" if source.is_dir() else "not found"
        raise ConfigError(what, path=str(source), fix="name the model file itself")

    digest, size = file_digest(source)
    version_dir = root / name / version
    existing = read_entry(version_dir)
    if existing is not None:
        if existing["sha256"] != digest:
            raise ConfigError(
                f"model {name} version {version} is already published with "
                "different content",
                path=str(version_dir),
                fix="publish under a new version",
            )
        return existing

    _copy_atomic(source, version_dir / source.name)
    entry = {
        "name": name,
        "version": version,
        "sha256": digest,
        "size": size,
        "created": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "framework": framework,
        "url": f"{name}/{version}/{source.name}",
    }
    write_atomic(version_dir / MANIFEST, json.dumps(entry, indent=2) + "\n")
    write_index(root)
    return entry


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_entry(version_dir: Path) -> dict[str, Any] | None:
    """The manifest of one published version, or None."""
    path = version_dir / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def list_models(root: Path) -> list[dict[str, Any]]:
    """Every published version, ordered by name and creation time."""
    entries = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in root.glob(f"*/*/{MANIFEST}")
    ]
    return sorted(entries, key=lambda entry: (entry["name"], entry["created"]))


def write_index(root: Path) -> dict[str, Any]:
    """Rewrite the registry's top-level manifest from the version manifests."""
    models = list_models(root)
    index = {
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "latest": {entry["name"]: entry["version"] for entry in models},
        "models": models,
    }
    write_atomic(root / MANIFEST, json.dumps(index, indent=2) + "\n")
    return index


def announce(broker: Broker, entry: dict[str, Any]) -> str:
    """Publish the entry, retained, on the model's topic; returns the topic."""
    topic = topics.model_topic(entry["name"])
    client = connect(broker, f"iotstack-registry-{os.getpid()}")
    try:
        publish(client, topic, json.dumps(entry, sort_keys=True), retain=True)
    finally:
        disconnect(client)
    return topic


def stack_broker(stack_dir: Path, plan: StackPlan) -> Broker:
    """The stack's broker as the host reaches it, with Node-RED's service login."""
    service = plan.services["mosquitto"]
    host = service.publish_address
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    env = read_env(stack_dir / ENV_NAME)
    return Broker(
        host,
        service.host_port,
        env.get("MQTT_NODERED_USER"),
        env.get("MQTT_NODERED_PASSWORD"),
    )


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy a possibly large file so the target appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
