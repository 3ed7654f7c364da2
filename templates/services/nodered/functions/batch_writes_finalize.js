// On stop or redeploy: cancel the pending sends (at most maxWaitMs of messages).
const state = context.get("state") || { pending: {} };
for (const batch of Object.values(state.pending)) clearTimeout(batch.timer);
context.set("state", { pending: {}, lastSent: {} });
