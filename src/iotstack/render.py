"""Render a stack folder from its config: every file in memory first, then written."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from iotstack import flows, grafana
from iotstack.budget import iotdb_jvm_memory
from iotstack.compose import assemble_compose
from iotstack.config import StackConfig, duration_ms, load_config
from iotstack.credentials import bcrypt_hash, mosquitto_hash
from iotstack.data import data_dir, dump_yaml, parse_yaml
from iotstack.envfile import (
    ENV_NAME,
    ensure_env,
    mqtt_password_key,
    read_env,
    wanted_variables,
)
from iotstack.errors import ConfigError
from iotstack.files import write_atomic
from iotstack.manifest import Manifest, checksum
from iotstack.plan import StackPlan, build_plan

COMPOSE_NAME = "docker-compose.yml"
SECRET_MODE = 0o600


@dataclass(frozen=True)
class RenderedFile:
    """One generated file: its content and the mode it is written with."""

    content: str
    mode: int = 0o644


@dataclass
class RenderReport:
    """What a render did, or would do."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_edited: dict[str, str] = field(default_factory=dict)
    overwritten_edited: list[str] = field(default_factory=list)
    env_added: list[str] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)


def jinja_environment() -> jinja2.Environment:
    """The template environment: a missing value is an error, never empty text."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        # Compiled templates are kept in a private per-user temp folder, so a
        # render does not compile every template again.
        bytecode_cache=jinja2.FileSystemBytecodeCache(),
    )
    env.filters["to_yaml"] = lambda value: dump_yaml(value, sort_keys=False, width=1000)
    env.filters["to_json"] = lambda value: json.dumps(value, indent=2)
    env.filters["js"] = json.dumps
    return env


def template_context(plan: StackPlan, env_values: dict[str, str]) -> dict[str, Any]:
    """The values every template sees."""
    config = plan.config
    salt = env_values["IOTSTACK_SALT"]
    mqtt_users = []
    if plan.has("mosquitto"):
        names = [env_values["MQTT_NODERED_USER"], *config.mqtt.users]
        for name in dict.fromkeys(names):
            key = (
                "MQTT_NODERED_PASSWORD"
                if name == "nodered"
                else mqtt_password_key(name)
            )
            mqtt_users.append(
                {"name": name, "hash": mosquitto_hash(name, env_values[key], salt)}
            )
    context: dict[str, Any] = {
        "config": config,
        "plan": plan,
        "variant": plan.variant,
        "services": plan.services,
        "metrics_store": plan.metrics_store,
        "mqtt_users": mqtt_users,
        "url": plan.internal_url,
        "internal_host": plan.internal_host,
        "secrets": env_values,
        "ttl_ms": duration_ms,
    }
    if plan.has("nodered"):
        context["nodered_admin_hash"] = bcrypt_hash(
            "nodered-admin", env_values["NODERED_ADMIN_PASSWORD"], salt
        )
        context["nodered_flows"] = flows.build_flows(plan)
        context["nodered_credentials"] = flows.build_credentials(plan)
    if plan.has("iotdb"):
        context["iotdb_memory"] = iotdb_jvm_memory(plan.services["iotdb"].memory_mib)
        context["jvm_options"] = jvm_options
        direct_mib = context["iotdb_memory"]["datanode"][1]
        context["iotdb_wal_buffer_bytes"] = min(32, max(1, direct_mib // 8)) << 20
        context["iotdb_version"] = plan.services["iotdb"].image.rsplit(":", 1)[-1]
    if plan.has("grafana"):
        context["grafana_datasources"] = grafana.datasources(plan)
        context["grafana_plugins"] = grafana.plugins(plan)
        context["grafana_dashboard"] = grafana.starter_dashboard(plan)
    return context


def jvm_options(memory: tuple[int, int]) -> str:
    """All three flags together: the start scripts only honour them as a set.

    The unit is an upper-case M because the scripts strip only "M" or "G"
    before doing arithmetic on the direct-memory size.
    """
    heap, direct = memory
    return f"-Xms{heap}M -Xmx{heap}M -XX:MaxDirectMemorySize={direct}M"


def render_files(
    plan: StackPlan, env_values: dict[str, str]
) -> dict[str, RenderedFile]:
    """Render every file of the stack into memory."""
    env = jinja_environment()
    context = template_context(plan, env_values)
    rendered: dict[str, RenderedFile] = {}
    fragments: dict[str, dict[str, Any]] = {}

    for name in plan.services:
        service_dir = data_dir("templates") / "services" / name
        context["svc"] = plan.services[name]
        fragment_text = env.get_template(f"services/{name}/compose.yml.j2").render(
            context
        )
        fragments[name] = _parse_yaml(fragment_text, f"services/{name}/compose.yml.j2")

        files_dir = service_dir / "files"
        for source in sorted(files_dir.rglob("*.j2")):
            relative = source.relative_to(files_dir).as_posix().removesuffix(".j2")
            template = f"services/{name}/files/{relative}.j2"
            content = env.get_template(template).render(context)
            if not content.strip():
                continue
            _check_syntax(relative, content)
            rendered[relative] = RenderedFile(content, _mode_for(relative))

    rendered[COMPOSE_NAME] = RenderedFile(assemble_compose(plan, fragments))
    return dict(sorted(rendered.items()))


def _mode_for(relative: str) -> int:
    """Files holding password hashes are private; the rest are readable."""
    private = relative.endswith(("passwd", "_cred.json", "-password"))
    return SECRET_MODE if private else 0o644


def _parse_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise RuntimeError(f"template {origin} rendered invalid YAML: {exc}") from exc


def _check_syntax(relative: str, content: str) -> None:
    """A template that renders broken YAML or JSON is a bug: fail loudly."""
    if relative.endswith((".yml", ".yaml")):
        _parse_yaml(content, relative)
    elif relative.endswith(".json"):
        json.loads(content)


def load_plan(stack_dir: Path) -> tuple[StackConfig, StackPlan]:
    """Load and resolve the stack's config."""
    config = load_config(stack_dir)
    return config, build_plan(config)


def render_stack(stack_dir: Path, *, force: bool = False, dry_run: bool = False):
    """Render the stack; edited files are kept unless `force`. Returns a report."""
    _, plan = load_plan(stack_dir)
    manifest = Manifest.load(stack_dir)
    _refuse_lost_secrets(stack_dir, manifest)

    if dry_run:
        env_values = _preview_env(stack_dir, plan)
        env_added: list[str] = []
    else:
        env_values, env_added = ensure_env(stack_dir, plan)
    rendered = render_files(plan, env_values)

    report = RenderReport(env_added=env_added)
    for relative, file in rendered.items():
        _apply(stack_dir, relative, file, manifest, report, force, dry_run)
    _redact_secrets(report, _secret_values(plan, env_values))

    if not dry_run:
        manifest.save(stack_dir)
    return report


def _refuse_lost_secrets(stack_dir: Path, manifest: Manifest) -> None:
    """A stack rendered before without its `.env` has lost its secrets.

    New ones would not match what the data volumes already hold (InfluxDB,
    Grafana and IoTDB keep the passwords of their first start), so the stack
    would break in confusing ways; stop and say how to recover instead.
    """
    if manifest.files and not (stack_dir / ENV_NAME).exists():
        raise ConfigError(
            "is missing, but this stack was rendered before with the secrets in it",
            path=str(stack_dir / ENV_NAME),
            fix="restore it from your backup; to start over with new secrets, "
            "run `iotstack down --volumes` and delete .iotstack/manifest.json",
        )


def _secret_values(plan: StackPlan, env_values: dict[str, str]) -> list[str]:
    """The generated secrets of this stack, longest first."""
    keys = [key for key, fixed in wanted_variables(plan).items() if fixed is None]
    values = {env_values[key] for key in keys if env_values.get(key)}
    return sorted(values, key=len, reverse=True)


def _redact_secrets(report: RenderReport, secret_values: list[str]) -> None:
    """Diffs are shown to the user, so no secret value may appear in them."""
    for diffs in (report.diffs, report.kept_edited):
        for relative, text in diffs.items():
            for value in secret_values:
                text = text.replace(value, "********")
            diffs[relative] = text


def _preview_env(stack_dir: Path, plan: StackPlan) -> dict[str, str]:
    """The `.env` values a render would use, without writing any."""
    values = read_env(stack_dir / ENV_NAME)
    for key, fixed in wanted_variables(plan).items():
        values.setdefault(key, fixed if fixed is not None else "preview-secret")
    return values


def _apply(
    stack_dir: Path,
    relative: str,
    file: RenderedFile,
    manifest: Manifest,
    report: RenderReport,
    force: bool,
    dry_run: bool,
) -> None:
    """Write one file unless the user edited it; record what happened."""
    path = stack_dir / relative
    new_sum = checksum(file.content)

    if not path.exists():
        report.created.append(relative)
        report.diffs[relative] = _diff(relative, "", file.content)
        _write(path, file, manifest, relative, new_sum, dry_run)
        return
    if path.is_dir():
        raise ConfigError(
            "is a folder where iotstack writes a file",
            path=str(path),
            fix="move it away, then render again",
        )

    current = path.read_text(encoding="utf-8")
    current_sum = checksum(current)
    if current_sum == new_sum:
        report.unchanged.append(relative)
        if not dry_run:
            manifest.files[relative] = new_sum
            _ensure_mode(path, file.mode)
        return

    edited = manifest.files.get(relative) != current_sum
    diff = _diff(relative, current, file.content)
    if edited and not force:
        report.kept_edited[relative] = diff
        return
    if edited:
        report.overwritten_edited.append(relative)
    report.updated.append(relative)
    report.diffs[relative] = diff
    _write(path, file, manifest, relative, new_sum, dry_run)


def _write(path, file, manifest, relative, new_sum, dry_run) -> None:
    if dry_run:
        return
    write_atomic(path, file.content, mode=file.mode)
    manifest.files[relative] = new_sum


def _ensure_mode(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)


def _diff(relative: str, old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{relative} (on disk)",
            tofile=f"{relative} (rendered)",
        )
    )
