"""The reference edge agent: follows model announcements and installs models safely.

It needs only httpx and paho-mqtt. For each retained announcement on
`iot/models/<name>` it downloads the model from the registry, checks size and
SHA-256, switches the `current` link atomically, keeps the `previous` one, runs
the validation hook and switches back if the hook fails. Its running versions
are published, retained, on `iot/edge/<agent>/status`.

Layout under `--models-dir`: `<name>/versions/<version>/<file>` with the
announcement beside it as `manifest.json`, and the `current` and `previous`
symlinks pointing into `versions/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from iotstack.edge import topics
from iotstack.edge.mqtt import Broker, connect, disconnect, publish
from iotstack.errors import RuntimeFailure
from iotstack.files import write_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
REJECTED = "rejected.json"
CHUNK = 1 << 16
DOWNLOAD_TIMEOUT_S = 60.0
VALIDATE_TIMEOUT_S = 60.0
REQUIRED = ("name", "version", "sha256", "size", "url")


class ModelRefused(RuntimeFailure):
    """A model version that was not installed, or was rolled back, and why."""

    def __init__(self, result: str, reason: str) -> None:
        self.result = result
        self.reason = reason
        super().__init__(reason)


@dataclass
class Outcome:
    """What happened to one announcement."""

    model: str
    version: str
    result: str
    reason: str = ""


@dataclass
class EdgeAgent:
    """Installs announced models into `models_dir` and reports what runs."""

    broker: Broker
    registry_url: str
    models_dir: Path
    agent_id: str
    validate: str | None = None
    last: Outcome | None = None
    _inbox: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)

    def run(self, run_for: float = 0.0, stop: threading.Event | None = None) -> None:
        """Follow announcements until stopped (SIGTERM/SIGINT) or `run_for` s."""
        stop = stop or threading.Event()
        deadline = time.monotonic() + run_for if run_for > 0 else None
        client = connect(self.broker, f"iotstack-agent-{self.agent_id}")
        client.on_message = lambda _c, _u, message: self._inbox.put(
            (message.topic, message.payload)
        )
        client.on_connect = lambda c, *_args: c.subscribe(topics.MODELS_FILTER, qos=1)
        client.subscribe(topics.MODELS_FILTER, qos=1)
        self._publish_status(client)

        try:
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    topic, payload = self._inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                self.handle(topic, payload)
                self._publish_status(client)
        finally:
            disconnect(client)

    def handle(self, topic: str, payload: bytes) -> Outcome | None:
        """Act on one announcement; returns what happened (None: not a model)."""
        name = topics.model_name_of(topic)
        if name is None or not payload:
            return None
        try:
            entry = self._parse(name, payload)
            outcome = self.install(entry)
        except ModelRefused as refused:
            version = _version_of(payload)
            outcome = Outcome(name, version, refused.result, refused.reason)
            log.warning("model %s %s %s: %s", name, version, refused.result, refused)
        self.last = outcome
        return outcome

    def install(self, entry: dict[str, Any]) -> Outcome:
        """Download, verify, switch to and validate one model version."""
        name, version = entry["name"], entry["version"]
        model_dir = self.models_dir / name
        if self.running(name).get("version") == version:
            return Outcome(name, version, "unchanged")
        if entry["sha256"] in self._rejected(model_dir):
            raise ModelRefused("skipped", "this version failed validation before")

        staged = self._download(model_dir, entry)
        target = model_dir / "versions" / version
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)

        previous = _link_target(model_dir / "current")
        _point(model_dir / "current", target)
        if previous is not None:
            _point(model_dir / "previous", previous)

        failure = self._validation_failure(target, entry)
        if failure:
            self._roll_back(model_dir, previous, target, entry["sha256"])
            raise ModelRefused("rolled_back", failure)

        self._prune(model_dir)
        log.info("model %s now runs version %s", name, version)
        return Outcome(name, version, "installed")

    def running(self, name: str) -> dict[str, Any]:
        """The manifest of the version `current` points at (empty if none)."""
        manifest = self.models_dir / name / "current" / MANIFEST
        if not manifest.is_file():
            return {}
        return json.loads(manifest.read_text(encoding="utf-8"))

    def status(self) -> dict[str, Any]:
        """The retained status document: running versions and the last outcome."""
        models = {}
        if self.models_dir.is_dir():
            for model_dir in sorted(self.models_dir.iterdir()):
                running = self.running(model_dir.name)
                if running:
                    models[model_dir.name] = {
                        "version": running["version"],
                        "sha256": running["sha256"],
                    }
        last = self.last.__dict__ if self.last else None
        return {
            "agent": self.agent_id,
            "ts": int(time.time() * 1000),
            "models": models,
            "last": last,
        }

    def _publish_status(self, client: Any) -> None:
        document = json.dumps(self.status(), sort_keys=True)
        publish(client, topics.status_topic(self.agent_id), document, retain=True)

    def _parse(self, name: str, payload: bytes) -> dict[str, Any]:
        """The announcement as a dict, with the fields the agent relies on checked."""
        try:
            entry = json.loads(payload)
        except ValueError:
            raise ModelRefused("refused", "announcement is not JSON") from None
        if not isinstance(entry, dict) or any(key not in entry for key in REQUIRED):
            raise ModelRefused("refused", f"announcement lacks one of {REQUIRED}")
        if entry["name"] != name:
            raise ModelRefused("refused", "announcement names another model")
        if not topics.VERSION.match(str(entry["version"])):
            raise ModelRefused("refused", "version is not a plain name")
        if not isinstance(entry["size"], int) or entry["size"] < 0:
            raise ModelRefused("refused", "size is not a byte count")
        return entry

    def _download(self, model_dir: Path, entry: dict[str, Any]) -> Path:
        """Fetch the file into a staging folder; refuse on size or SHA-256 mismatch."""
        url = self._model_url(entry["url"])
        staging = model_dir / f".incoming-{entry['version']}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        path = staging / Path(urllib.parse.urlsplit(url).path).name

        try:
            digest, size = _fetch(url, path, limit=entry["size"])
        except (httpx.HTTPError, OSError) as exc:
            shutil.rmtree(staging)
            raise ModelRefused("refused", f"download failed: {exc}") from None
        if size != entry["size"] or digest != entry["sha256"]:
            shutil.rmtree(staging)
            raise ModelRefused(
                "refused",
                f"checksum mismatch: got {size} bytes sha256 {digest[:12]}…, "
                f"announced {entry['size']} bytes sha256 {entry['sha256'][:12]}…",
            )

        write_atomic(staging / MANIFEST, json.dumps(entry, indent=2) + "\n")
        return staging

    def _model_url(self, relative: str) -> str:
        """The absolute URL of a model file; it must stay under the registry URL."""
        base = self.registry_url.rstrip("/") + "/"
        url = urllib.parse.urljoin(base, relative)
        if not url.startswith(base) or ".." in relative.split("/"):
            raise ModelRefused("refused", f"url {relative!r} leaves the registry")
        return url

    def _validation_failure(self, target: Path, entry: dict[str, Any]) -> str:
        """Run the validation hook on the new model; the reason it failed, or ''."""
        if not self.validate:
            return ""
        model_file = target / Path(entry["url"]).name
        env = {
            **os.environ,
            "IOTSTACK_MODEL_PATH": str(model_file),
            "IOTSTACK_MODEL_NAME": entry["name"],
            "IOTSTACK_MODEL_VERSION": entry["version"],
        }
        try:
            done = subprocess.run(
                shlex.split(self.validate),
                env=env,
                capture_output=True,
                text=True,
                timeout=VALIDATE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"validation hook failed to run: {exc}"
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            return f"validation hook exited {done.returncode}: {detail[0]}".rstrip(": ")
        return ""

    def _roll_back(
        self, model_dir: Path, previous: Path | None, failed: Path, sha256: str
    ) -> None:
        """Point `current` back at the previous version and forget the failed one."""
        if previous is not None:
            _point(model_dir / "current", previous)
        else:
            (model_dir / "current").unlink(missing_ok=True)
        shutil.rmtree(failed, ignore_errors=True)
        rejected = sorted(self._rejected(model_dir) | {sha256})
        write_atomic(model_dir / REJECTED, json.dumps(rejected) + "\n")

    def _rejected(self, model_dir: Path) -> set[str]:
        path = model_dir / REJECTED
        if not path.is_file():
            return set()
        return set(json.loads(path.read_text(encoding="utf-8")))

    def _prune(self, model_dir: Path) -> None:
        """Keep only the current and the previous version on disk."""
        keep = {
            _link_target(model_dir / "current"),
            _link_target(model_dir / "previous"),
        }
        for version_dir in (model_dir / "versions").iterdir():
            if version_dir.resolve() not in keep:
                shutil.rmtree(version_dir, ignore_errors=True)


def _fetch(url: str, path: Path, limit: int) -> tuple[str, int]:
    """Stream `url` into `path`, stopping one byte past `limit`; (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    with (
        httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        path.open("wb") as out,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes(CHUNK):
            size += len(chunk)
            if size > limit:
                break
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _link_target(link: Path) -> Path | None:
    """The resolved folder a symlink points at, or None."""
    if not link.is_symlink():
        return None
    return link.resolve()


def _point(link: Path, target: Path) -> None:
    """Make `link` point at `target` atomically (a new link renamed over it)."""
    temporary = link.with_name(f".{link.name}.new")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(os.path.relpath(target, link.parent))
    os.replace(temporary, link)


def _version_of(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("version", "?"))
    except (ValueError, AttributeError):
        return "?"


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the agent stops between messages."""
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_args: stop.set())
    return stop
