// Exit 0 when Node-RED answers on the port (and scheme) its settings name;
// any status below 500 counts, since the editor may ask for a login.
const http = require("http");
const https = require("https");

let port = 1880;
let secure = false;
try {
  const settings = require("/data/settings.js");
  port = settings.uiPort || port;
  secure = Boolean(settings.https);
} catch (err) {
  // No settings file yet: Node-RED runs on its defaults.
}

const client = secure ? https : http;
const options = { host: "127.0.0.1", port, path: "/", timeout: 4000, rejectUnauthorized: false };
const request = client.get(options, (res) => {
  process.exit(res.statusCode >= 200 && res.statusCode < 500 ? 0 : 1);
});
request.on("error", () => process.exit(1));
request.on("timeout", () => process.exit(1));
