// The HTTP server the suites run on: NEMO_HTTP_SERVER=node runs every suite on Node's http module
// instead of a native uWebSockets.js build (CI does both). Gateways built in-process get it here;
// spawned ones inherit it.
export const HTTP_SERVER_ENV: Readonly<Record<string, string>> = process.env.NEMO_HTTP_SERVER ? { NEMO_HTTP_SERVER: process.env.NEMO_HTTP_SERVER } : {};
