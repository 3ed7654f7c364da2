// A raw sample on iot/raw/<site>/<device>/<metric>: a JSON number, or an object
// {"value": number, "ts": epoch ms (optional), "unit": string (optional)}.
const parts = msg.topic.split("/");
if (parts.length !== 5) {
    return reject("topic must be iot/raw/<site>/<device>/<metric>");
}
const site = parts[2];
const device = parts[3];
const metric = parts[4];
for (const segment of [site, device, metric]) {
    if (!SEGMENT.test(segment)) {
        return reject("topic segment '" + segment + "' may hold only A-Z a-z 0-9 _");
    }
}

let body = parseBody();
if (body === undefined) return reject("payload is not JSON");
if (typeof body === "number") body = { value: body };
if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return reject("payload must be a JSON object or a number");
}
if (typeof body.value !== "number" || !isFinite(body.value)) {
    return reject("value must be a finite number");
}
const unknownRaw = unknownKeys(body, ["value", "ts", "unit"]);
if (unknownRaw) return reject("unknown key '" + unknownRaw + "' (allowed: value, ts, unit)");
if (body.unit !== undefined && (typeof body.unit !== "string" || body.unit.length > 32)) {
    return reject("unit must be a string of at most 32 characters");
}
const ts = timestampOf(body);
if (ts === null) return reject("ts must be epoch milliseconds (a positive integer)");

let keep = true;
for (const rule of ROUTE.rawRules) {
    if (topicMatches(rule.topic, msg.topic)) keep = rule.keep;
}
if (!keep) {
    count("dropped");
    return null;
}

const line = "iot,site=" + escapeTag(site) + ",device=" + escapeTag(device) + " " +
    metric + "=" + body.value + " " + ts;
const record = {
    device: ROUTE.iotdbRoot + "." + site + "." + device,
    timestamp: ts,
    measurements: [metric],
    data_types: ["DOUBLE"],
    values: [body.value],
};
count("accepted");
return [ROUTE.sinks.map((sink) => writeItem(sink, [line], record)), null];
