// Which Node version and which HTTP server implementation a serving process really runs, read from
// the process itself once it is up: NemoRouter's /metrics (nemo_nodejs_version_info and
// nemo_http_server_info), the bare proxy's /__stats. Never inferred from how the bench started it.

export interface ServerRuntime {
  /** process.version of the serving process, e.g. "v20.20.2". */
  node: string;
  /** "uws" (a native uWebSockets.js build) or "node" (Node's http module, the fallback). */
  implementation: string;
  /** Which build: the uWS package, or the Node http module. */
  build: string;
}

async function getText(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return text;
}

/** The labels of the first sample of `name` (an info metric: one sample, value 1). */
export function metricLabels(metrics: string, name: string): Record<string, string> | undefined {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{`));
  if (line === undefined) return undefined;
  const labels: Record<string, string> = {};
  const body = line.slice(name.length + 1, line.lastIndexOf('}'));
  for (const match of body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[match[1]!] = match[2]!.replace(/\\(.)/g, '$1');
  return labels;
}

export async function readNemoRuntime(origin: string): Promise<ServerRuntime> {
  const metrics = await getText(`${origin}/metrics`);
  const version = metricLabels(metrics, 'nemo_nodejs_version_info');
  const server = metricLabels(metrics, 'nemo_http_server_info');
  if (version?.version === undefined || server?.implementation === undefined) {
    throw new Error(`${origin}/metrics has no nemo_nodejs_version_info or nemo_http_server_info: cannot tell what the gateway runs`);
  }
  return { node: version.version, implementation: server.implementation, build: server.build ?? '' };
}

export async function readBareRuntime(origin: string): Promise<ServerRuntime> {
  const stats = JSON.parse(await getText(`${origin}/__stats`)) as { node?: string; server?: { implementation: string; build: string } };
  if (stats.node === undefined || stats.server === undefined) throw new Error(`${origin}/__stats does not say what the bare proxy runs`);
  return { node: stats.node, implementation: stats.server.implementation, build: stats.server.build };
}

export const runtimeText = (r: ServerRuntime | undefined): string => (r === undefined ? '-' : `${r.node} ${r.implementation}`);
