"""Pipeline: MQTT → Node-RED → VictoriaMetrics and IoTDB, against direct writes."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

from benchmarks.measure import BenchmarkError
from benchmarks.native_stack import NativeStack, node_red_counters, shared_stack
from benchmarks.results import Measurement, Options, Section, median, percentile

NAME = "pipeline"
TITLE = "Pipeline: MQTT → Node-RED → VictoriaMetrics / IoTDB"
METHOD = (
    "The minimal variant is rendered with host networking and its real servers "
    "run natively on 127.0.0.1 from the rendered configs (Mosquitto, Node-RED "
    "with the rendered flows, VictoriaMetrics, a real IoTDB 1C1D from the Maven "
    "Central jars with root's password set from `.env`). A device client "
    "(paho-mqtt, QoS 1) publishes JSON samples on `iot/raw/<site>/<device>/"
    "<metric>`; the flow groups the decoded samples per store (at most one "
    "request per store every 20 ms, up to 500 messages each) and sends one "
    "line-protocol write to VictoriaMetrics and one `insertRecords` to IoTDB per "
    "group. A message counts as delivered when "
    "the flow's own "
    'counter (`iotstack_writes_total{result="ok"}` on Node-RED\'s `/metrics`) '
    "shows the store acknowledged it. *Burst*: a bounded number of messages "
    "published as fast as the client can; the rate is delivered messages over "
    "the time until the last acknowledgement. *Latency*: messages published at "
    "a fixed rate (a light 50 msg/s, and half the burst rate); the k-th "
    "message's latency is the "
    "time until the ok counter reached k (counters sampled every 10 ms). "
    "*Ceiling*: the same samples written straight to the store from Python on "
    "the same machine (httpx), one sample per request with two threads (the "
    "per-message ceiling) and 1,000 per request (the batched ceiling)."
)

SINKS = {"metrics": "VictoriaMetrics", "iotdb": "IoTDB"}
# A light load, where a batch rarely fills and its wait shows in the latency.
LIGHT_RATE = 50.0
POLL_S = 0.01
CPU_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Delivery:
    """How many messages one sink acknowledged, and when the last one was."""

    delivered: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


def run(options: Options) -> Section:
    """Burst, fixed-rate latency and the direct-write ceilings."""
    section = Section(NAME, TITLE, METHOD)
    stack = shared_stack(options)
    burst_size = 100 if options.quick else 5000
    latency_seconds = 2.0 if options.quick else 15.0
    requests = 100 if options.quick else 3000

    with httpx.Client(timeout=10.0) as client, _Device(stack) as device:
        _warm_up(stack, client, device)
        cpu_before = _cpu_seconds(stack)
        burst, publish_s = _burst(stack, client, device, burst_size)
        cpu = {
            name: used - cpu_before[name] for name, used in _cpu_seconds(stack).items()
        }
        burst_wall = max(d.seconds for d in burst.values())
        rate = min(d.rate for d in burst.values())
        latencies = _fixed_rate(
            stack, client, device, max(5.0, rate / 2), latency_seconds
        )
        light = _fixed_rate(stack, client, device, LIGHT_RATE, latency_seconds)

    ceilings = {
        "metrics": _direct_victoriametrics(stack, requests),
        "iotdb": _direct_iotdb(stack, requests),
    }

    for sink, label in SINKS.items():
        single, batched, direct_latency = ceilings[sink]
        delivery = burst[sink]
        section.add(
            Measurement(
                f"burst → {label}: messages per second",
                delivery.rate,
                "msg/s",
                "direct, 1 sample per request",
                single,
                note=f"{delivery.delivered}/{burst_size} delivered in "
                f"{delivery.seconds:.1f} s (publishing took {publish_s:.1f} s)",
            )
        )
        section.add(
            Measurement(
                f"burst → {label} against the batched ceiling",
                delivery.rate,
                "msg/s",
                "direct, 1,000 samples per request",
                batched,
            )
        )
        for at_rate, (p50, p99, count) in (
            (LIGHT_RATE, light[sink]),
            (max(5.0, rate / 2), latencies[sink]),
        ):
            section.add(
                Measurement(
                    f"latency p50 → {label} at {at_rate:.0f} msg/s",
                    p50 * 1000,
                    "ms",
                    "direct request p50",
                    direct_latency[0] * 1000,
                    note=f"{count} messages",
                )
            )
            section.add(
                Measurement(
                    f"latency p99 → {label} at {at_rate:.0f} msg/s",
                    p99 * 1000,
                    "ms",
                    "direct request p99",
                    direct_latency[1] * 1000,
                )
            )

    busy = ", ".join(
        f"{name} {seconds / burst_wall * 100:.0f} %" for name, seconds in cpu.items()
    )
    section.notes.append(
        f"CPU during the burst (share of one core, {os.cpu_count()} cores): {busy}."
    )
    section.notes.append(_saturation_note(cpu, burst_wall))
    section.notes.append(
        "Why the ratios are what they are: the flow sends each store one request "
        "per batch, so a burst can pass the one-sample-per-request ceiling; the "
        "1,000-per-request ceiling stays far off because every message still "
        "crosses the broker and Node-RED one by one (MQTT receive, JSON decode, "
        "validation, counting on one JavaScript thread), on the same two cores "
        "as the publisher and both stores. At a light load a message waits for "
        "its store's next request slot (at most 20 ms), which is most of the "
        "latency over a direct request."
    )
    lost = burst_size - min(d.delivered for d in burst.values())
    if lost:
        section.notes.append(
            f"{lost} of {burst_size} burst messages never reached the stores: "
            "the broker stops queueing QoS 1 messages for a subscriber that is "
            "behind by more than the per-client limits of the rendered "
            "mosquitto.conf (max_queued_messages, max_queued_bytes)."
        )
    return section


class _Device:
    """A device-like MQTT client with the stack's device login."""

    def __init__(self, stack: NativeStack) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}"
        )
        self.client.username_pw_set("device", stack.env["MQTT_DEVICE_PASSWORD"])
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.port = stack.ports["mosquitto"]
        self.run_id = uuid.uuid4().hex[:6]

    def __enter__(self) -> _Device:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def publish(self, number: int) -> mqtt.MQTTMessageInfo:
        topic = f"iot/raw/bench{self.run_id}/dev{number % 10}/temperature"
        body = {"value": number, "ts": int(time.time() * 1000)}
        return self.client.publish(topic, json.dumps(body), qos=1)


def _ok_counts(stack: NativeStack, client: httpx.Client) -> dict[str, int]:
    """Acknowledged writes per sink, summed over routes."""
    counts = dict.fromkeys(SINKS, 0)
    for key, value in node_red_counters(stack, client).items():
        if key.startswith("iotstack_writes_total") and 'result="ok"' in key:
            for sink in SINKS:
                if f'sink="{sink}"' in key:
                    counts[sink] += int(value)
    return counts


def _warm_up(stack: NativeStack, client: httpx.Client, device: _Device) -> None:
    """Publish until both sinks acknowledge: flows deployed and subscribed."""
    before = _ok_counts(stack, client)
    deadline = time.monotonic() + 90
    number = 0
    while time.monotonic() < deadline:
        device.publish(number).wait_for_publish(5)
        number += 1
        time.sleep(0.5)
        now = _ok_counts(stack, client)
        if all(now[sink] > before[sink] for sink in SINKS):
            return
    raise BenchmarkError(
        "no write reached VictoriaMetrics and IoTDB through Node-RED in 90 s; "
        f"see {stack.servers['nodered'].log_file}"
    )


def _burst(
    stack: NativeStack, client: httpx.Client, device: _Device, size: int
) -> tuple[dict[str, Delivery], float]:
    """Publish ``size`` messages at once; wait until both sinks stop growing."""
    before = _ok_counts(stack, client)
    started = time.monotonic()
    for number in range(size):
        device.publish(number)
    publish_s = time.monotonic() - started

    last = dict.fromkeys(SINKS, started)
    seen = dict.fromkeys(SINKS, 0)
    deadline = started + max(60.0, size / 50)
    while time.monotonic() < deadline:
        now = _ok_counts(stack, client)
        for sink in SINKS:
            if now[sink] - before[sink] > seen[sink]:
                seen[sink] = now[sink] - before[sink]
                last[sink] = time.monotonic()
        done = all(seen[sink] >= size for sink in SINKS)
        stalled = all(time.monotonic() - last[sink] > 10 for sink in SINKS)
        if done or stalled:
            break
        time.sleep(0.05)

    return {s: Delivery(seen[s], last[s] - started) for s in SINKS}, publish_s


def _fixed_rate(
    stack: NativeStack,
    client: httpx.Client,
    device: _Device,
    rate: float,
    seconds: float,
) -> dict[str, tuple[float, float, int]]:
    """p50/p99 publish→acknowledged latency per sink at ``rate`` messages/s."""
    before = _ok_counts(stack, client)
    count = max(1, int(rate * seconds))
    sent: list[float] = []
    samples: list[tuple[float, dict[str, int]]] = []
    stop = threading.Event()

    def sample() -> None:
        with httpx.Client(timeout=10.0) as poller:
            while not stop.is_set():
                counts = _ok_counts(stack, poller)
                samples.append((time.monotonic(), counts))
                if all(counts[s] - before[s] >= count for s in SINKS):
                    return
                time.sleep(POLL_S)

    poller = threading.Thread(target=sample, daemon=True)
    poller.start()
    started = time.monotonic()
    for number in range(count):
        due = started + number / rate
        time.sleep(max(0.0, due - time.monotonic()))
        sent.append(time.monotonic())
        device.publish(number)
    poller.join(timeout=seconds + 30)
    stop.set()

    result = {}
    for sink in SINKS:
        latencies = []
        for k, sent_at in enumerate(sent, start=1):
            arrived = next(
                (t for t, counts in samples if counts[sink] - before[sink] >= k), None
            )
            if arrived is not None:
                latencies.append(arrived - sent_at)
        if not latencies:
            raise BenchmarkError(
                f"no message reached {SINKS[sink]} at {rate:.0f} msg/s"
            )
        result[sink] = (median(latencies), percentile(latencies, 0.99), len(latencies))
    return result


def _direct_victoriametrics(
    stack: NativeStack, requests: int
) -> tuple[float, float, tuple[float, float]]:
    """Line protocol straight to VictoriaMetrics: single and batched rates."""
    url = stack.url("victoriametrics", "/write?precision=ms")

    def line(number: int) -> str:
        ts = int(time.time() * 1000)
        tags = f"site=direct,device=dev{number % 10}"
        return f"bench_direct,{tags} temperature={number} {ts}"

    def single(http: httpx.Client, number: int) -> None:
        http.post(url, content=line(number)).raise_for_status()

    def batch(http: httpx.Client, number: int) -> None:
        body = "\n".join(line(number * 1000 + i) for i in range(1000))
        http.post(url, content=body).raise_for_status()

    return _direct(single, batch, requests)


def _direct_iotdb(
    stack: NativeStack, requests: int
) -> tuple[float, float, tuple[float, float]]:
    """`insertTablet` straight to IoTDB's REST API: single and batched rates."""
    url = stack.url("iotdb", "/rest/v2/insertTablet")
    auth = ("root", stack.env["IOTDB_PASSWORD"])
    base = int(time.time() * 1000)

    def tablet(number: int, rows: int) -> dict[str, object]:
        return {
            "device": f"root.iot.direct.dev{number % 10}",
            "timestamps": [base + number * rows + i for i in range(rows)],
            "measurements": ["temperature"],
            "data_types": ["DOUBLE"],
            "values": [[float(number * rows + i) for i in range(rows)]],
            "is_aligned": False,
        }

    def post(http: httpx.Client, body: dict[str, object]) -> None:
        answer = http.post(url, json=body, auth=auth)
        answer.raise_for_status()
        if answer.json().get("code") != 200:
            raise BenchmarkError(f"IoTDB refused a direct write: {answer.text}")

    return _direct(
        lambda http, n: post(http, tablet(n, 1)),
        lambda http, n: post(http, tablet(n, 1000)),
        requests,
    )


def _direct(single, batch, requests: int) -> tuple[float, float, tuple[float, float]]:
    """Rates (samples/s) one-per-request on two threads and batched; latencies."""
    durations: list[float] = []

    def worker(offset: int, count: int) -> None:
        with httpx.Client(timeout=10.0) as http:
            for number in range(offset, offset + count):
                started = time.perf_counter()
                single(http, number)
                durations.append(time.perf_counter() - started)

    half = requests // 2
    threads = [threading.Thread(target=worker, args=(i * half, half)) for i in range(2)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    single_rate = 2 * half / (time.perf_counter() - started)

    batches = max(2, requests // 100)
    with httpx.Client(timeout=30.0) as http:
        started = time.perf_counter()
        for number in range(batches):
            batch(http, number)
        batched_rate = batches * 1000 / (time.perf_counter() - started)

    return single_rate, batched_rate, (median(durations), percentile(durations, 0.99))


def _cpu_seconds(stack: NativeStack) -> dict[str, float]:
    """CPU time (user + system) so far of Node-RED, Mosquitto, VM and IoTDB."""
    pids = {
        "Node-RED": stack.servers["nodered"].process.pid,
        "Mosquitto": stack.servers["mosquitto"].process.pid,
        "VictoriaMetrics": stack.servers["victoriametrics"].process.pid,
    }
    datanode = stack.iotdb._processes.get("datanode")
    if datanode is not None:
        pids["IoTDB DataNode"] = datanode.pid
    return {name: _process_cpu(pid) for name, pid in pids.items()}


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CPU_TICKS


def _saturation_note(cpu: dict[str, float], wall: float) -> str:
    """Name the process that was busiest during the burst."""
    busiest, seconds = max(cpu.items(), key=lambda item: item[1])
    share = seconds / wall if wall else 0.0
    if busiest == "Node-RED" and share > 0.8:
        return (
            f"Saturation: Node-RED used {share * 100:.0f} % of one core, and it runs "
            "JavaScript on one thread, so the flow's per-message work (MQTT "
            "receive, decode, batching) is the limit, not the stores."
        )
    return (
        f"Saturation: the busiest process was {busiest} at {share * 100:.0f} % of "
        "one core; with two cores shared by the publisher, the broker, Node-RED "
        "and both stores, the machine's CPU is the limit."
    )
