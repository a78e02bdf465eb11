// The server environment of the suites, for gateways built in-process from an env object of their
// own (spawned ones inherit process.env): NEMO_HTTP_SERVER=node runs every suite on Node's http
// module instead of a native uWebSockets.js build (CI does both); NEMO_DRAIN_DELAY_MS (0, from
// vitest.config.ts) keeps stopping a gateway quick; NEMO_LEDGER_MODE=hold runs on per-request holds.
const PASSED = ['NEMO_HTTP_SERVER', 'NEMO_DRAIN_DELAY_MS', 'NEMO_LEDGER_MODE'] as const;

export const HTTP_SERVER_ENV: Readonly<Record<string, string>> = Object.fromEntries(
  PASSED.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
);
