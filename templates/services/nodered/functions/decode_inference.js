// An edge inference result on iot/inference/<site>/<device>/<model>:
// {"score": number, "ts": epoch ms (optional), "model_version": string (optional),
//  "aggregates": {name: number} (optional)}.
const parts = msg.topic.split("/");
if (parts.length !== 5) {
    return reject("topic must be iot/inference/<site>/<device>/<model>");
}
const site = parts[2];
const device = parts[3];
const model = parts[4];
for (const segment of [site, device, model]) {
    if (!SEGMENT.test(segment)) {
        return reject("topic segment '" + segment + "' may hold only A-Z a-z 0-9 _");
    }
}

const body = parseBody();
if (body === undefined) return reject("payload is not JSON");
if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return reject("payload must be a JSON object");
}
if (typeof body.score !== "number" || !isFinite(body.score)) {
    return reject("score must be a finite number");
}
const unknownInference = unknownKeys(body, ["score", "ts", "model_version", "aggregates"]);
if (unknownInference) {
    return reject("unknown key '" + unknownInference +
        "' (allowed: score, ts, model_version, aggregates)");
}
if (body.model_version !== undefined &&
    (typeof body.model_version !== "string" || body.model_version.length > 64)) {
    return reject("model_version must be a string of at most 64 characters");
}
const ts = timestampOf(body);
if (ts === null) return reject("ts must be epoch milliseconds (a positive integer)");
const aggregates = body.aggregates || {};
if (aggregates === null || typeof aggregates !== "object" || Array.isArray(aggregates) ||
    Object.keys(aggregates).length > 32) {
    return reject("aggregates must be an object of at most 32 numbers");
}
for (const [name, value] of Object.entries(aggregates)) {
    if (!SEGMENT.test(name) || typeof value !== "number" || !isFinite(value)) {
        return reject("aggregate '" + name + "' must be a finite number with a plain name");
    }
}

const anomaly = body.score >= ROUTE.anomalyThreshold;
const tags = "site=" + escapeTag(site) + ",device=" + escapeTag(device) +
    ",model=" + escapeTag(model);
const fields = ["score=" + body.score];
for (const [name, value] of Object.entries(aggregates)) fields.push(name + "=" + value);
const lines = ["iot_inference," + tags + " " + fields.join(",") + " " + ts];
if (anomaly) lines.push("iot_anomaly," + tags + " score=" + body.score + " " + ts);

const measurements = [model + "_score"];
const types = ["DOUBLE"];
const values = [body.score];
for (const [name, value] of Object.entries(aggregates)) {
    measurements.push(model + "_" + name);
    types.push("DOUBLE");
    values.push(value);
}
measurements.push(model + "_anomaly");
types.push("BOOLEAN");
values.push(anomaly);
const record = {
    device: ROUTE.iotdbRoot + "." + site + "." + device,
    timestamp: ts,
    measurements: measurements,
    data_types: types,
    values: values,
};
if (anomaly) countAnomaly(site, device, model);
count("accepted");
return [ROUTE.sinks.map((sink) => writeItem(sink, lines, record)), null];
