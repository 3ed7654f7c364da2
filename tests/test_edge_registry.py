"""`iotstack model publish|list`: files, manifests and errors, without a broker."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.cli import run_cli
from harness.native import free_port
from iotstack.edge.contracts import problems
from iotstack.edge.registry import list_models, publish_model
from iotstack.errors import ConfigError


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "detector.onnx"
    path.write_bytes(b"weights " * 64)
    return path


def test_publish_writes_the_file_and_both_manifests(tmp_path: Path, model: Path):
    root = tmp_path / "registry"

    entry = publish_model(root, model, "detector", "1.0.0", "onnx")

    assert (root / "detector" / "1.0.0" / "detector.onnx").read_bytes() == (
        model.read_bytes()
    )
    assert entry["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert entry["size"] == 512
    assert entry["url"] == "detector/1.0.0/detector.onnx"
    assert problems("model-announcement", entry) == []
    version_manifest = json.loads((root / "detector/1.0.0/manifest.json").read_text())
    assert version_manifest == entry
    index = json.loads((root / "manifest.json").read_text())
    assert problems("registry-manifest", index) == []
    assert index["latest"] == {"detector": "1.0.0"}


def test_same_file_again_is_a_no_op_a_different_one_is_refused(
    tmp_path: Path, model: Path
):
    root = tmp_path / "registry"
    first = publish_model(root, model, "detector", "1.0.0", "onnx")

    again = publish_model(root, model, "detector", "1.0.0", "onnx")
    model.write_bytes(b"other weights")
    with pytest.raises(ConfigError, match="already published with different"):
        publish_model(root, model, "detector", "1.0.0", "onnx")

    assert again == first
    assert [entry["version"] for entry in list_models(root)] == ["1.0.0"]


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("bad/name", "1", "cannot be a topic segment"),
        ("detector", "../1", "is not usable"),
        ("detector", "", "is not usable"),
    ],
)
def test_unusable_names_and_versions_are_refused(
    tmp_path: Path, model: Path, name: str, version: str, message: str
):
    with pytest.raises(ConfigError, match=message):
        publish_model(tmp_path / "registry", model, name, version, "onnx")

    assert not (tmp_path / "registry").exists()


def _stack(tmp_path: Path, variant: str, broker_port: int) -> Path:
    stack = tmp_path / "stack"
    init = run_cli("init", "--dir", str(stack), "--variant", variant)
    assert init.returncode == 0, init.stderr
    config = stack / "iotstack.yaml"
    config.write_text(
        config.read_text().replace("ports: {}", f"ports: {{mosquitto: {broker_port}}}")
    )
    assert run_cli("render", "--dir", str(stack)).returncode == 0
    return stack


def test_cli_publishes_and_lists_without_announcing(tmp_path: Path, model: Path):
    stack = _stack(tmp_path, "edge-first", free_port())

    published = run_cli(
        "model", "publish", str(model), "--name", "detector", "--version", "2.1",
        "--dir", str(stack), "--no-announce",
    )  # fmt: skip
    listed = run_cli("model", "list", "--dir", str(stack), "--json")

    assert published.returncode == 0, published.stderr
    assert "published detector 2.1 (512 bytes" in published.stdout
    assert [m["version"] for m in json.loads(listed.stdout)] == ["2.1"]


def test_cli_names_an_unreachable_broker_in_one_line(tmp_path: Path, model: Path):
    port = free_port()
    stack = _stack(tmp_path, "edge-first", port)

    published = run_cli(
        "model", "publish", str(model), "--name", "detector", "--version", "1",
        "--dir", str(stack),
    )  # fmt: skip

    assert published.returncode == 1
    assert f"MQTT broker 127.0.0.1:{port} unreachable" in published.stderr
    assert "stored in the registry but was not announced" in published.stderr
    assert "Traceback" not in published.stderr
    assert (stack / "registry" / "detector" / "1" / "manifest.json").is_file()


def test_cli_refuses_a_variant_without_registry(tmp_path: Path, model: Path):
    stack = _stack(tmp_path, "minimal", free_port())

    published = run_cli(
        "model", "publish", str(model), "--name", "detector", "--version", "1",
        "--dir", str(stack), "--no-announce",
    )  # fmt: skip

    assert published.returncode == 2
    assert "variant minimal has no model registry" in published.stderr


def test_publish_names_a_folder_given_as_the_model(tmp_path: Path):
    from iotstack.edge.registry import publish_model
    from iotstack.errors import ConfigError

    with pytest.raises(ConfigError, match="is a folder, not a model file"):
        publish_model(tmp_path / "registry", tmp_path, "detector", "1", "onnx")
