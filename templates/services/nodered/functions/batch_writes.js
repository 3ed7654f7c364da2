// Groups one route's decoded writes per sink and sends one HTTP write per
// group. A sink gets at most one request per ROUTE.batch.maxWaitMs: a message
// that finds the sink idle for longer goes at once, the others wait for the
// next slot, and a group that reaches ROUTE.batch.maxMessages goes at once.
// One request per message cost a round trip and a store commit each.
// ROUTE (route name, write targets, batch limits) is prepended by iotstack.
const sink = msg.sink;
const state = context.get("state") || { pending: {}, lastSent: {} };
context.set("state", state);

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
    const batch = state.pending[sink];
    if (batch === undefined) return;
    delete state.pending[sink];
    clearTimeout(batch.timer);
    state.lastSent[sink] = Date.now();
    node.send(writeRequest(batch.items), false);
}

let batch = state.pending[sink];
if (batch === undefined) {
    batch = { items: [], timer: null };
    state.pending[sink] = batch;
}
batch.items.push(msg);
const wait = (state.lastSent[sink] || 0) + ROUTE.batch.maxWaitMs - Date.now();
if (batch.items.length >= ROUTE.batch.maxMessages || wait <= 0) {
    flush();
} else if (batch.timer === null) {
    batch.timer = setTimeout(flush, wait);
}
return null;
