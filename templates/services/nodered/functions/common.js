// Shared by the decode functions. ROUTE (route name, sinks, raw keep/drop
// rules) is prepended by iotstack when it renders the flow.
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

// One decoded write for the batching node: the store's line(s) or record,
// plus the message itself, for a dead letter if the store refuses the batch.
function writeItem(sink, lines, record) {
    return {
        sink: sink,
        lines: lines,
        record: record,
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
