"""`model publish|list` and `edge agent|replay`: the edge-first model registry."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from iotstack import console
from iotstack.app import DirOption, JsonOption, app
from iotstack.errors import IotstackError

model_app = typer.Typer(help="Publish and list models in the stack's registry.")
edge_app = typer.Typer(help="Run the reference edge agent or replay device data.")
app.add_typer(model_app, name="model")
app.add_typer(edge_app, name="edge")

BrokerOption = Annotated[str, typer.Option(help="MQTT broker as HOST:PORT.")]
UserOption = Annotated[
    str | None, typer.Option("--user", envvar="IOTSTACK_MQTT_USER", help="MQTT user.")
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="IOTSTACK_MQTT_PASSWORD",
        help="MQTT password (better: the IOTSTACK_MQTT_PASSWORD variable).",
        show_default=False,
    ),
]


@model_app.command("publish")
def model_publish(
    file: Annotated[Path, typer.Argument(help="The model file.")],
    name: Annotated[str, typer.Option(help="Model name (A-Z a-z 0-9 _).")],
    version: Annotated[str, typer.Option(help="Version, e.g. 1.4.0.")],
    framework: Annotated[
        str, typer.Option(help="What runs the model, e.g. onnx, tflite.")
    ] = "unspecified",
    stack_dir: DirOption = Path("."),
    announce: Annotated[
        bool, typer.Option(help="Announce it on MQTT (iot/models/<name>).")
    ] = True,
    broker: Annotated[
        str | None, typer.Option(help="Broker HOST:PORT instead of the stack's.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a model version to the registry and announce it to the edge agents."""
    from iotstack.edge.mqtt import Broker
    from iotstack.edge.registry import (
        announce as announce_entry,
    )
    from iotstack.edge.registry import (
        publish_model,
        registry_dir,
        stack_broker,
    )
    from iotstack.render import load_plan

    _, plan = load_plan(stack_dir)
    entry = publish_model(registry_dir(stack_dir, plan), file, name, version, framework)

    topic = None
    if announce:
        target = stack_broker(stack_dir, plan)
        if broker:
            target = Broker.parse(broker, target.user, target.password)
        try:
            topic = announce_entry(target, entry)
        except IotstackError as exc:
            raise type(exc)(
                f"{name} {version} is stored in the registry but was not announced: "
                f"{exc} — start the broker, then run `iotstack model publish` again "
                "with the same file to announce it"
            ) from None

    if as_json:
        console.emit_json({"model": entry, "announced_on": topic})
        return
    console.success(
        f"published {name} {version} ({entry['size']} bytes, {entry['url']})"
    )
    if topic:
        console.success(f"announced on {topic} (retained)")


@model_app.command("list")
def model_list(stack_dir: DirOption = Path("."), as_json: JsonOption = False) -> None:
    """List the model versions in the stack's registry."""
    from iotstack.edge.registry import list_models, registry_dir
    from iotstack.render import load_plan

    _, plan = load_plan(stack_dir)
    models = list_models(registry_dir(stack_dir, plan))
    if as_json:
        console.emit_json(models)
        return
    console.table(
        "Models",
        ["name", "version", "framework", "size", "sha256", "created"],
        [
            (
                m["name"],
                m["version"],
                m["framework"],
                m["size"],
                m["sha256"][:12],
                m["created"],
            )
            for m in models
        ],
    )


@edge_app.command("agent")
def edge_agent(
    broker: BrokerOption,
    registry: Annotated[
        str, typer.Option(help="Registry base URL, e.g. http://HOST/models/.")
    ],
    models_dir: Annotated[Path, typer.Option(help="Where models are installed.")],
    user: UserOption = None,
    password: PasswordOption = None,
    validate: Annotated[
        str | None,
        typer.Option(help="Command that checks a new model; non-zero rolls back."),
    ] = None,
    agent_id: Annotated[
        str | None, typer.Option(help="Name in iot/edge/<id>/status (host name).")
    ] = None,
    run_for: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: run until stopped).")
    ] = 0.0,
) -> None:
    """Follow model announcements: download, verify, switch, validate, roll back."""
    from iotstack.edge import topics
    from iotstack.edge.agent import EdgeAgent, stop_on_signals
    from iotstack.edge.mqtt import Broker

    identity = agent_id or socket.gethostname().split(".")[0].replace("-", "_")
    topics.check_segment(identity, "agent id")
    agent = EdgeAgent(
        broker=Broker.parse(broker, user, password),
        registry_url=registry,
        models_dir=models_dir,
        agent_id=identity,
        validate=validate,
    )
    console.info(f"edge agent {identity}: following {topics.MODELS_FILTER} on {broker}")
    agent.run(run_for=run_for, stop=stop_on_signals())
    console.info(f"edge agent {identity}: stopped")


@edge_app.command("replay")
def edge_replay(
    file: Annotated[Path, typer.Argument(help="CSV: ts,site,device,metric,value.")],
    broker: BrokerOption,
    rate: Annotated[float, typer.Option(help="Messages per second.")] = 10.0,
    limit: Annotated[
        int | None, typer.Option(help="Send at most this many rows.")
    ] = None,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """Publish the rows of a CSV file as raw device readings."""
    from iotstack.edge.mqtt import Broker
    from iotstack.edge.replay import read_csv, replay

    readings = read_csv(file)
    sent = replay(readings, Broker.parse(broker, user, password), rate, limit)
    console.success(f"replayed {sent} readings from {file} to {broker}")
