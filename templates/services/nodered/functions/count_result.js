// After each HTTP write: count it, and send failures to the dead-letter topic.
// IoTDB answers HTTP 200 with a non-success "code" in the body on errors.
const key = "iotstack_writes_total";
const counters = global.get(key) || {};
let ok = msg.statusCode >= 200 && msg.statusCode < 300;
let detail = "HTTP " + msg.statusCode;
if (ok && msg.sink === "iotdb") {
    try {
        const body = JSON.parse(msg.payload);
        ok = body.code === 200;
        detail = "IoTDB code " + body.code + ": " + body.message;
    } catch (e) {
        ok = false;
        detail = "IoTDB answered something that is not JSON";
    }
}
const label = ROUTE.route + "|" + msg.sink + "|" + (ok ? "ok" : "failed");
counters[label] = (counters[label] || 0) + 1;
global.set(key, counters);
if (ok) return null;

node.warn("write to " + msg.sink + " failed: " + detail);
const letter = {
    reason: "write to " + msg.sink + " failed: " + detail,
    route: ROUTE.route,
    topic: msg.original.topic,
    payload: msg.original.payload,
    received: Date.now(),
};
return { topic: "iot/deadletter/" + ROUTE.route, payload: JSON.stringify(letter) };
