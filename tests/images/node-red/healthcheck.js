// Exit 0 when the editor/admin root answers on the configured port.
const http = require("http");

let port = 1880;
try {
  const settings = require("/data/settings.js");
  if (settings.uiPort) port = settings.uiPort;
} catch (err) {
  // No settings file yet: Node-RED runs on its default port.
}

const request = http.get({ host: "127.0.0.1", port, path: "/", timeout: 4000 }, (res) => {
  process.exit(res.statusCode >= 200 && res.statusCode < 400 ? 0 : 1);
});
request.on("error", () => process.exit(1));
request.on("timeout", () => process.exit(1));
