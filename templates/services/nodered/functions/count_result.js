// After each batched HTTP write: count its messages and the request, and send
// every message of a refused batch to the dead-letter topic (a batch holds at
// most the batch limit of messages, each payload cut to 1 KiB).
// IoTDB answers HTTP 200 with a non-success "code" in the body on errors.
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
const writes = global.get("iotstack_writes_total") || {};
writes[label] = (writes[label] || 0) + msg.originals.length;
global.set("iotstack_writes_total", writes);
const requests = global.get("iotstack_write_requests_total") || {};
requests[label] = (requests[label] || 0) + 1;
global.set("iotstack_write_requests_total", requests);
if (ok) return null;

const reason = "write to " + msg.sink + " failed: " + detail;
node.warn(reason + " (" + msg.originals.length + " messages)");
const received = Date.now();
return [msg.originals.map((original) => ({
    topic: "iot/deadletter/" + ROUTE.route,
    payload: JSON.stringify({
        reason: reason,
        route: ROUTE.route,
        topic: original.topic,
        payload: original.payload,
        received: received,
    }),
}))];
