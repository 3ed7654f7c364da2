// Prometheus text format from the counters the ingest functions keep.
const out = [];
const messages = global.get("iotstack_messages_total") || {};
out.push("# HELP iotstack_messages_total MQTT messages decoded, by route and result.");
out.push("# TYPE iotstack_messages_total counter");
for (const [label, value] of Object.entries(messages)) {
    const [route, result] = label.split("|");
    out.push('iotstack_messages_total{route="' + route + '",result="' + result + '"} ' + value);
}
const writes = global.get("iotstack_writes_total") || {};
out.push("# HELP iotstack_writes_total Messages written to a database, by route, sink and result.");
out.push("# TYPE iotstack_writes_total counter");
for (const [label, value] of Object.entries(writes)) {
    const [route, sink, result] = label.split("|");
    out.push('iotstack_writes_total{route="' + route + '",sink="' + sink +
        '",result="' + result + '"} ' + value);
}
const requests = global.get("iotstack_write_requests_total") || {};
out.push("# HELP iotstack_write_requests_total Batched database write requests, by route, sink and result.");
out.push("# TYPE iotstack_write_requests_total counter");
for (const [label, value] of Object.entries(requests)) {
    const [route, sink, result] = label.split("|");
    out.push('iotstack_write_requests_total{route="' + route + '",sink="' + sink +
        '",result="' + result + '"} ' + value);
}
const anomalies = global.get("iotstack_anomalies_total") || {};
out.push("# HELP iotstack_anomalies_total Inference results at or above the anomaly threshold.");
out.push("# TYPE iotstack_anomalies_total counter");
for (const [label, value] of Object.entries(anomalies)) {
    const [site, device, model] = label.split("|");
    out.push('iotstack_anomalies_total{site="' + site + '",device="' + device +
        '",model="' + model + '"} ' + value);
}
msg.payload = out.join("\n") + "\n";
return msg;
