"""The field cases C01..C09: each cause is impossible in what iotstack renders.

Every test runs over every variant x backend (and, where the network mode
matters, both modes), reading the rendered files the way the real service would.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from iotstack.config import load_config
from iotstack.data import load_profile
from iotstack.envfile import read_env
from iotstack.manifest import Manifest
from iotstack.plan import StackPlan, build_plan
from iotstack.render import render_stack
from iotstack.scaffold import init_stack

VARIANTS = ["minimal", "iotdb-centric", "edge-first"]
BACKENDS = ["victoriametrics", "influxdb"]
MODES = ["bridge", "host"]
LOOPBACK = re.compile(r"\b(localhost|127\.0\.0\.1(?!\d)|\[?::1\]?(?=:\d))")


@dataclass
class Stack:
    """A rendered stack folder and what it was rendered from."""

    root: Path
    plan: StackPlan
    compose: dict[str, Any]
    env: dict[str, str]

    def text(self, relative: str) -> str:
        return (self.root / relative).read_text()

    def service(self, name: str) -> dict[str, Any]:
        return self.compose["services"][name]


_stacks: dict[tuple[str, str, str], Stack] = {}


def rendered(
    tmp_path_factory: pytest.TempPathFactory,
    variant: str,
    backend: str,
    mode: str = "bridge",
    **edits: str,
) -> Stack:
    """Render a stack once per combination (plus any `pattern=replacement`)."""
    key = (variant, backend, mode + repr(sorted(edits.items())))
    if key in _stacks:
        return _stacks[key]

    root = tmp_path_factory.mktemp(f"{variant}-{backend}-{mode}")
    config = init_stack(root, variant=variant, backend=backend)
    text = config.read_text().replace("network_mode: bridge", f"network_mode: {mode}")
    for pattern, replacement in edits.items():
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        assert count == 1, pattern
    config.write_text(text)
    render_stack(root)

    plan = build_plan(load_config(root))
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    stack = Stack(root, plan, compose, read_env(root / ".env"))
    _stacks[key] = stack
    return stack


every_stack = pytest.mark.parametrize(
    ("variant", "backend"), [(v, b) for v in VARIANTS for b in BACKENDS]
)
every_mode = pytest.mark.parametrize("mode", MODES)


def bind_mounts(stack: Stack) -> list[tuple[str, Path, str]]:
    """(service, host source, container target) of every bind mount."""
    mounts = []
    for name, service in stack.compose["services"].items():
        for entry in service.get("volumes", []):
            source, target = entry.split(":")[:2]
            if source.startswith((".", "/")):
                mounts.append((name, (stack.root / source).resolve(), target))
    return mounts


# --- C01 ------------------------------------------------------------------------


@every_stack
@every_mode
def test_c01_mosquitto_has_an_explicit_listener_and_a_password_file(
    tmp_path_factory, variant, backend, mode
) -> None:
    stack = rendered(tmp_path_factory, variant, backend, mode)
    conf = stack.text("mosquitto/config/mosquitto.conf")
    mosquitto = stack.plan.services["mosquitto"]

    listeners = re.findall(r"^listener\s+(\d+)\s+(\S+)\s*$", conf, re.M)
    assert listeners == [(str(mosquitto.port), mosquitto.listen_address)]
    if mode == "bridge":
        assert mosquitto.listen_address == "0.0.0.0"
    assert re.search(r"^allow_anonymous false$", conf, re.M)
    assert "allow_anonymous true" not in conf
    assert re.search(r"^password_file /mosquitto/config/passwd$", conf, re.M)
    assert "/mosquitto/config" in {
        target for name, _, target in bind_mounts(stack) if name == "mosquitto"
    }

    entries = dict(
        line.split(":", 1)
        for line in stack.text("mosquitto/config/passwd").splitlines()
    )
    assert set(entries) == {"nodered", "device"}
    assert all(value.startswith("$7$") for value in entries.values())
    assert stack.env["MQTT_NODERED_PASSWORD"]
    assert stack.env["MQTT_DEVICE_PASSWORD"]


def test_c01_anonymous_only_when_asked(tmp_path_factory) -> None:
    stack = rendered(
        tmp_path_factory,
        "minimal",
        "victoriametrics",
        **{r"^  anonymous: false": "  anonymous: true"},
    )
    conf = stack.text("mosquitto/config/mosquitto.conf")

    assert re.search(r"^listener 1883 0\.0\.0\.0$", conf, re.M)
    assert re.search(r"^allow_anonymous true$", conf, re.M)


# --- C02 ------------------------------------------------------------------------


@every_stack
def test_c02_every_bind_mount_is_owned_by_the_user_its_image_runs_as(
    tmp_path_factory, variant, backend
) -> None:
    from iotstack.runtime.mounts import Owner, generated_files, prepare_bind_mounts
    from iotstack.runtime.project import load_project

    stack = rendered(tmp_path_factory, variant, backend)
    catalog = load_profile("services")
    mounts = bind_mounts(stack)
    assert {name for name, _, _ in mounts} >= {"mosquitto", "nodered", "nginx"}
    for name, _, _ in mounts:
        assert re.fullmatch(r"\d+:\d+", catalog[name]["user"]), name
        assert stack.plan.services[name].user == catalog[name]["user"]
    assert stack.plan.services["nodered"].uid == 1000

    project = load_project(stack.root, use_binary=False)
    owners = {
        name: Owner.parse(spec.user) for name, spec in stack.plan.services.items()
    }
    warnings = prepare_bind_mounts(project, owners, generated_files(project))

    if os.geteuid() != 0:
        assert warnings, "a non-root render must say how to fix ownership"
        return
    assert warnings == []
    for name, source, _ in mounts:
        expected = (owners[name].uid, owners[name].gid)
        paths = [source, *source.rglob("*")] if source.is_dir() else [source]
        for path in paths:
            stat = path.lstat()
            assert (stat.st_uid, stat.st_gid) == expected, (name, path)


# --- C03 ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_c03_influxdb_always_gets_its_admin_user_and_auth(
    tmp_path_factory, variant
) -> None:
    stack = rendered(tmp_path_factory, variant, "influxdb")
    environment = stack.service("influxdb")["environment"]

    assert environment["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    for name in ("INFLUXDB_ADMIN_USER", "INFLUXDB_ADMIN_PASSWORD", "INFLUXDB_DB"):
        reference = environment[name]
        assert reference == f"${{{name}}}", name
        assert stack.env[name], f"{name} is empty in .env"
    assert len(stack.env["INFLUXDB_ADMIN_PASSWORD"]) >= 24


@pytest.mark.parametrize("variant", VARIANTS)
def test_c03_every_influxdb_client_logs_in(tmp_path_factory, variant) -> None:
    stack = rendered(tmp_path_factory, variant, "influxdb")
    datasources = _datasources(stack)
    influx = [d for d in datasources if d["type"] == "influxdb"]

    assert len(influx) == 1
    assert influx[0]["user"] or influx[0].get("basicAuthUser")
    assert influx[0]["secureJsonData"]["password"]
    assert influx[0]["jsonData"].get("dbName") or influx[0].get("database")
    flows = stack.text("nodered/flows.json")
    assert "influxdb" in flows
    assert "auth" in flows


# --- C04 ------------------------------------------------------------------------


def _datasources(stack: Stack) -> list[dict[str, Any]]:
    text = stack.text("grafana/provisioning/datasources/iotstack.yml")
    document = yaml.safe_load(text)
    assert document["apiVersion"] == 1
    return document["datasources"]


@every_stack
@every_mode
def test_c04_grafana_datasources_are_whole_entries_with_uid_and_http_url(
    tmp_path_factory, variant, backend, mode
) -> None:
    stack = rendered(tmp_path_factory, variant, backend, mode)
    datasources = _datasources(stack)

    expected = {backend} | ({"iotdb"} if stack.plan.has("iotdb") else set())
    assert {d["uid"].removeprefix("iotstack-") for d in datasources} == expected
    assert len(datasources) == len(expected)
    for entry in datasources:
        assert set(entry) >= {"name", "uid", "type", "orgId", "url", "access"}
        assert entry["orgId"] == 1
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", entry["uid"])
        assert re.match(r"^http://[^/\s]+:\d+", entry["url"]), entry["url"]
    assert len({d["name"] for d in datasources}) == len(datasources)
    assert sum(bool(d.get("isDefault")) for d in datasources) == 1


# --- C05 ------------------------------------------------------------------------


@every_stack
def test_c05_every_bind_mount_source_exists_with_the_right_type(
    tmp_path_factory, variant, backend
) -> None:
    stack = rendered(tmp_path_factory, variant, backend)
    generated = {
        (stack.root / relative).resolve()
        for relative in Manifest.load(stack.root).files
    }

    for name, source, target in bind_mounts(stack):
        assert source.exists(), f"{name}: {source} is missing"
        if source in generated:
            assert source.is_file(), f"{name}: {source} should be a file"
            assert Path(target).suffix, f"{name}: file mounted on folder {target}"
        else:
            assert source.is_dir(), f"{name}: {source} should be a folder"
            assert any(source in path.parents for path in generated), source


# --- C06 ------------------------------------------------------------------------


def _without_comments(text: str) -> str:
    """Config text without `#` comment lines (they may name what is avoided)."""
    return "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    )


def _service_hosts(stack: Stack) -> dict[str, set[str]]:
    """Every host the generated configs send traffic to, by file."""
    hosts: dict[str, set[str]] = {}
    prometheus = yaml.safe_load(stack.text("prometheus/prometheus.yml"))
    hosts["prometheus.yml"] = {
        target.rsplit(":", 1)[0]
        for job in prometheus["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    } | {
        re.match(r"https?://([^:/]+)", write["url"]).group(1)
        for write in prometheus.get("remote_write", [])
    }
    nginx = stack.text("nginx/nginx.conf")
    hosts["nginx.conf"] = set(re.findall(r"set \$\w+ ([^:;\s]+):\d+;", nginx))
    hosts["nginx.conf"] |= set(re.findall(r"proxy_pass http://([^$][^:/;]*)", nginx))
    flows = json.loads(stack.text("nodered/flows.json"))
    hosts["flows.json"] = {
        node["broker"] for node in flows if node["type"] == "mqtt-broker"
    } | set(re.findall(r"https?://([^:/\"\\]+)", json.dumps(flows)))
    hosts["datasources"] = {
        re.match(r"http://([^:/]+)", d["url"]).group(1) for d in _datasources(stack)
    }
    return hosts


@every_stack
def test_c06_bridge_mode_sends_nothing_to_localhost(
    tmp_path_factory, variant, backend
) -> None:
    stack = rendered(tmp_path_factory, variant, backend, "bridge")
    services = set(stack.plan.services)

    for where, hosts in _service_hosts(stack).items():
        assert hosts, f"{where} names no target"
        assert hosts <= services, f"{where} targets {hosts - services}"
    for relative in (
        "prometheus/prometheus.yml",
        "nginx/nginx.conf",
        "nodered/flows.json",
        "grafana/provisioning/datasources/iotstack.yml",
    ):
        assert not LOOPBACK.search(_without_comments(stack.text(relative))), relative


@every_stack
def test_c06_host_mode_uses_loopback_with_each_service_port(
    tmp_path_factory, variant, backend
) -> None:
    stack = rendered(tmp_path_factory, variant, backend, "host")

    for where, hosts in _service_hosts(stack).items():
        assert hosts == {"127.0.0.1"}, f"{where}: {hosts}"
    prometheus = yaml.safe_load(stack.text("prometheus/prometheus.yml"))
    for job in prometheus["scrape_configs"]:
        name = job["job_name"]
        port = 9091 if name == "iotdb" else stack.plan.services[name].port
        assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]
    for service in stack.compose["services"].values():
        assert service["network_mode"] == "host"
        assert "ports" not in service


def test_c06_ports_follow_the_config_in_host_mode(tmp_path_factory) -> None:
    stack = rendered(
        tmp_path_factory,
        "minimal",
        "victoriametrics",
        "host",
        **{r"^ports: \{\}": "ports: {victoriametrics: 18428, nodered: 11880}"},
    )

    assert "127.0.0.1:18428" in stack.text("prometheus/prometheus.yml")
    assert "127.0.0.1:11880" in stack.text("nginx/nginx.conf")
    assert "127.0.0.1:18428" in stack.text("nodered/flows.json")
    assert "uiPort: 11880" in stack.text("nodered/settings.js")


# --- C07 ------------------------------------------------------------------------


def _location(nginx: str, path: str) -> str:
    match = re.search(
        r"location\s+" + re.escape(path) + r"\s*\{(?P<body>[^}]*)\}", nginx
    )
    assert match, f"no location {path}"
    return match.group("body")


@every_stack
@every_mode
def test_c07_nginx_forwards_the_node_red_websocket_upgrade(
    tmp_path_factory, variant, backend, mode
) -> None:
    stack = rendered(tmp_path_factory, variant, backend, mode)
    nginx = stack.text("nginx/nginx.conf")
    body = _location(nginx, "/nodered/")

    assert re.search(r"^\s*proxy_http_version 1\.1;", body, re.M)
    assert re.search(r"^\s*proxy_set_header Upgrade \$http_upgrade;", body, re.M)
    assert re.search(
        r"^\s*proxy_set_header Connection \$connection_upgrade;", body, re.M
    )
    assert re.search(
        r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;", nginx
    )
    assert 'httpAdminRoot: "/nodered"' in stack.text("nodered/settings.js")


# --- C08 / C09: IoTDB ----------------------------------------------------------

_SIZE = {"k": 1 / 1024, "m": 1, "g": 1024}
_JVM_OPTION = re.compile(
    r"(?P<key>-Xmx|-XX:MaxDirectMemorySize=|(?:ON|OFF)_HEAP_MEMORY['\"]?\s*[=:]\s*)"
    r"['\"]?(?P<size>\d+)(?P<unit>[kKmMgG])"
)


def _mib(size: str, unit: str) -> float:
    return int(size) * _SIZE[unit.lower()]


def _iotdb_texts(stack: Stack) -> dict[str, str]:
    """The IoTDB service definition and every file rendered for it."""
    texts = {"compose": yaml.safe_dump(stack.service("iotdb"))}
    for path in sorted((stack.root / "iotdb").rglob("*")):
        if path.is_file():
            texts[path.relative_to(stack.root).as_posix()] = path.read_text()
    return texts


@every_stack
def test_c08_iotdb_confignode_and_datanode_have_explicit_heap_and_direct_memory(
    tmp_path_factory, variant, backend
) -> None:
    stack = rendered(tmp_path_factory, variant, backend)
    service = stack.service("iotdb")
    limit = _mib(*re.fullmatch(r"(\d+)([kmg])", service["mem_limit"]).groups())
    text = "\n".join(_iotdb_texts(stack).values())

    heap, direct = [], []
    for match in _JVM_OPTION.finditer(text):
        size = _mib(match.group("size"), match.group("unit"))
        is_heap = match.group("key").startswith(("-Xmx", "ON"))
        (heap if is_heap else direct).append(size)

    assert len(heap) >= 2, f"no explicit heap for ConfigNode and DataNode:\n{text}"
    assert len(direct) >= 2, f"no explicit direct memory for both nodes:\n{text}"
    total = sum(heap) + sum(direct)
    assert total < limit, f"JVM memory {total} MiB is not below mem_limit {limit}"


_SEED_KEYS = {
    "old": {"cn_target_config_node_list", "dn_target_config_node_list"},
    "new": {"cn_seed_config_node", "dn_seed_config_node"},
}


def _iotdb_version(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[1]
    return tuple(int(part) for part in re.match(r"(\d+)\.(\d+)", tag).groups())


@every_stack
def test_c09_iotdb_seed_keys_match_the_pinned_version(
    tmp_path_factory, variant, backend
) -> None:
    stack = rendered(tmp_path_factory, variant, backend)
    version = _iotdb_version(stack.service("iotdb")["image"])
    wanted = _SEED_KEYS["new" if version >= (1, 3) else "old"]
    unwanted = _SEED_KEYS["old" if version >= (1, 3) else "new"]

    values: dict[str, set[str]] = {}
    for where, text in _iotdb_texts(stack).items():
        text = _without_comments(text)
        used = set(re.findall(r"\b([a-z]+_(?:target|seed)_config_node\w*)", text))
        assert not used & unwanted, f"{where} mixes in {used & unwanted}"
        assert used <= wanted, f"{where} has unknown seed keys {used - wanted}"
        for key in used:
            match = re.search(rf"\b{key}\s*[=:]\s*['\"]?([^\s'\"]+)", text)
            values.setdefault(key, set()).add(match.group(1))
    assert set(values) == wanted
    for key, seen in values.items():
        assert len(seen) == 1, f"{key} has different values: {seen}"

    if stack.plan.has("ainode"):
        ainode = yaml.safe_dump(stack.service("ainode")).lower()
        expected = "ain_seed_config_node" if version >= (2, 0) else None
        if expected:
            assert expected in ainode
            assert "ain_target_config_node_list" not in ainode
