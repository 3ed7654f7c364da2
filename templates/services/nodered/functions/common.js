// Shared by the decode functions. ROUTE (route name, sinks, write targets,
// raw keep/drop rules) is prepended by iotstack when it renders the flow.
const SEGMENT = /^[A-Za-z0-9_]+$/;

function count(result) {
    const key = "iotstack_messages_total";
    const counters = global.get(key) || {};
    const label = ROUTE.route + "|" + result;
    counters[label] = (counters[label] || 0) + 1;
    global.set(key, counters);
}

// Anomalies per source, exported on /metrics for Prometheus alerting rules.
function countAnomaly(site, device, model) {
    const key = "iotstack_anomalies_total";
    const counters = global.get(key) || {};
    const label = site + "|" + device + "|" + model;
    counters[label] = (counters[label] || 0) + 1;
    global.set(key, counters);
}

// The first key of `body` that the payload contract does not allow, or null.
function unknownKeys(body, allowed) {
    for (const name of Object.keys(body)) {
        if (!allowed.includes(name)) return name;
    }
    return null;
}

function reject(reason) {
    count("rejected");
    const letter = {
        reason: reason,
        route: ROUTE.route,
        topic: msg.topic,
        payload: String(msg.payload).slice(0, 1024),
        received: Date.now(),
    };
    return [null, { topic: ROUTE.deadLetterTopic, payload: JSON.stringify(letter) }];
}

function topicMatches(filter, topic) {
    const f = filter.split("/");
    const t = topic.split("/");
    for (let i = 0; i < f.length; i++) {
        if (f[i] === "#") return true;
        if (i >= t.length) return false;
        if (f[i] !== "+" && f[i] !== t[i]) return false;
    }
    return f.length === t.length;
}

function basicAuth(userVar, passwordVar) {
    const token = Buffer.from(env.get(userVar) + ":" + env.get(passwordVar));
    return "Basic " + token.toString("base64");
}

function writeMessage(sink, lines, tablet) {
    const target = ROUTE.targets[sink];
    const headers = {};
    let payload;
    if (sink === "metrics") {
        headers["content-type"] = "text/plain";
        payload = lines.join("\n");
        if (target.auth === "influxdb") {
            headers.authorization = basicAuth("INFLUXDB_ADMIN_USER", "INFLUXDB_ADMIN_PASSWORD");
        }
    } else {
        headers["content-type"] = "application/json";
        headers.authorization = basicAuth("IOTDB_USER", "IOTDB_PASSWORD");
        payload = JSON.stringify(tablet);
    }
    return {
        method: "POST",
        url: target.url,
        headers: headers,
        payload: payload,
        sink: sink,
        original: { topic: msg.topic, payload: String(msg.payload).slice(0, 1024) },
    };
}

function parseBody() {
    try {
        return JSON.parse(msg.payload);
    } catch (e) {
        return undefined;
    }
}

function timestampOf(body) {
    if (body.ts === undefined) return Date.now();
    if (Number.isInteger(body.ts) && body.ts > 0) return body.ts;
    return null;
}

function escapeTag(value) {
    return String(value).replace(/[ ,=]/g, "\\$&");
}
