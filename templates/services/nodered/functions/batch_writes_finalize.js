// On stop or redeploy: cancel the pending flushes (at most maxWaitMs of data).
const pending = context.get("pending") || {};
for (const batch of Object.values(pending)) clearTimeout(batch.timer);
context.set("pending", {});
