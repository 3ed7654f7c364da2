// Groups one route's decoded writes per sink and sends one HTTP write per
// group: at most ROUTE.batch.maxMessages messages, or what arrived within
// ROUTE.batch.maxWaitMs of the group's first message. One request per message
// cost a round trip and a store commit each; a group costs one of each.
// ROUTE (route name, write targets, batch limits) is prepended by iotstack.
const sink = msg.sink;
const pending = context.get("pending") || {};
context.set("pending", pending);

function basicAuth(userVar, passwordVar) {
    const token = Buffer.from(env.get(userVar) + ":" + env.get(passwordVar));
    return "Basic " + token.toString("base64");
}

// VictoriaMetrics and InfluxDB take many lines in one body; IoTDB's REST v2
// insertRecords takes one record per (device, timestamp), any devices mixed.
function writeRequest(items) {
    const target = ROUTE.targets[sink];
    const headers = {};
    let payload;
    if (sink === "metrics") {
        headers["content-type"] = "text/plain";
        payload = items.map((item) => item.lines.join("\n")).join("\n");
        if (target.auth === "influxdb") {
            headers.authorization = basicAuth("INFLUXDB_ADMIN_USER", "INFLUXDB_ADMIN_PASSWORD");
        }
    } else {
        headers["content-type"] = "application/json";
        headers.authorization = basicAuth("IOTDB_USER", "IOTDB_PASSWORD");
        const records = items.map((item) => item.record);
        payload = JSON.stringify({
            devices: records.map((r) => r.device),
            timestamps: records.map((r) => r.timestamp),
            measurements_list: records.map((r) => r.measurements),
            data_types_list: records.map((r) => r.data_types),
            values_list: records.map((r) => r.values),
            is_aligned: false,
        });
    }
    return {
        method: "POST",
        url: target.url,
        headers: headers,
        payload: payload,
        sink: sink,
        originals: items.map((item) => item.original),
    };
}

function flush() {
    const batch = pending[sink];
    if (batch === undefined) return;
    delete pending[sink];
    clearTimeout(batch.timer);
    node.send(writeRequest(batch.items), false);
}

if (pending[sink] === undefined) {
    pending[sink] = { items: [], timer: setTimeout(flush, ROUTE.batch.maxWaitMs) };
}
pending[sink].items.push(msg);
if (pending[sink].items.length >= ROUTE.batch.maxMessages) flush();
return null;
