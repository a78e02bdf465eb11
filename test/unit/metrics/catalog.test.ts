// The metric registry against what names it from outside: docs/metrics.md's metric catalog and the Grafana
// dashboards. A metric renamed, added or relabelled in src/metrics/registry.ts fails here until both follow.
import { readFileSync, readdirSync } from 'node:fs';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { enableLiteLLMMetrics, registry } from '../../../src/metrics/registry.js';

interface MetricShape {
  type: string;
  labels: string[];
}

const docUrl = new URL('../../../docs/metrics.md', import.meta.url);
const SECTION = '## Metric catalog';
const dashboardsUrl = new URL('../../../grafana/dashboards/', import.meta.url);
const HISTOGRAM_SERIES_SUFFIXES = ['_bucket', '_sum', '_count'];

/** Names prom-client's collectDefaultMetrics registers with our prefix, from a registry of its own. */
function defaultMetricNames(): Set<string> {
  const fresh = new Registry();
  collectDefaultMetrics({ register: fresh, prefix: 'nemo_' });
  return new Set(fresh.getMetricsAsArray().map((m) => m.name));
}

/** Declared label names; prom-client keeps them on the metric object but its types do not expose them. */
function labelNamesOf(name: string): string[] {
  const metric = registry.getSingleMetric(name) as unknown as { labelNames?: readonly string[] } | undefined;
  return [...(metric?.labelNames ?? [])].sort();
}

/** Rows of the docs/metrics.md "## Metric catalog" table: `| `nemo_x` | type | label, label | meaning |`. */
function documentedMetrics(): Map<string, MetricShape> {
  const text = readFileSync(docUrl, 'utf8');
  const start = text.search(/^## Metric catalog\s*$/m);
  expect(start, `docs/metrics.md has no "${SECTION}" section`).toBeGreaterThanOrEqual(0);
  const rest = text.slice(start + SECTION.length);
  const next = rest.search(/^## /m);
  const section = next === -1 ? rest : rest.slice(0, next);
  const rows = new Map<string, MetricShape>();
  for (const line of section.split(/\r?\n/)) {
    if (!line.startsWith('| `nemo_')) continue;
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    const name = (cells[0] ?? '').replace(/`/g, '');
    expect(rows.has(name), `docs/metrics.md lists ${name} twice`).toBe(false);
    const labels = (cells[2] ?? '').split(',').map((l) => l.trim().replace(/`/g, '')).filter((l) => l !== '');
    rows.set(name, { type: cells[1] ?? '', labels: labels.sort() });
  }
  return rows;
}

/** Every `expr` string anywhere in a dashboard, plus the template variables' query definitions. */
function dashboardQueries(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const item of node) dashboardQueries(item, out);
  } else if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if ((key === 'expr' || key === 'definition') && typeof value === 'string') out.push(value);
      else dashboardQueries(value, out);
    }
  }
  return out;
}

describe('metrics registry', () => {
  let types: Map<string, string>;
  let defaults: Set<string>;

  beforeAll(async () => {
    // Opt-in series are part of the catalog too.
    enableLiteLLMMetrics();
    types = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
    defaults = defaultMetricNames();
  });

  it('registers the gateway metrics and the prom-client defaults', () => {
    expect(defaults.size).toBeGreaterThan(0);
    for (const name of defaults) expect(types.has(name), `default metric ${name} missing from registry`).toBe(true);
    expect([...types.keys()].filter((n) => !defaults.has(n)).length).toBeGreaterThan(0);
  });

  it('names every metric nemo_* and gives every histogram a unit suffix', () => {
    for (const [name, type] of types) {
      expect(name, 'metric without the nemo_ prefix').toMatch(/^nemo_[a-z0-9_]+$/);
      if (type === 'histogram') expect(name, `histogram ${name} has no unit suffix`).toMatch(/_(seconds|bytes|ops)$/);
    }
  });

  it('matches the docs/metrics.md "## Metric catalog" table: same names, types and label names', () => {
    const registered = new Map<string, MetricShape>();
    for (const [name, type] of types) {
      if (!defaults.has(name)) registered.set(name, { type, labels: labelNamesOf(name) });
    }
    const documented = documentedMetrics();
    expect(documented.size, `docs/metrics.md "${SECTION}" table has no \`nemo_\` rows`).toBeGreaterThan(0);
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(registered));
  });

  it('uses only label names whose values come from bounded sets; org ids only on the opt-in top-N', () => {
    // Each name here is bounded by configuration or code: models and deployments configured,
    // provider kinds, routes, status classes, outcomes and reasons the code enumerates. A new label
    // must be added here on purpose; ids of keys, requests or users never may.
    const bounded = new Set(['implementation', 'build', 'route', 'model', 'status_class', 'provider', 'outcome', 'cause', 'result', 'kind', 'reason', 'operation', 'direction', 'result', 'pool', 'state', 'measure', 'task', 'where', 'rule', 'action', 'stage', 'cache', 'decided_by']);
    const optInTopN = new Set(['nemo_org_requests_total', 'nemo_org_charged_micros_total']);
    for (const name of types.keys()) {
      if (defaults.has(name)) continue;
      for (const label of labelNamesOf(name)) {
        if (label === 'org' && optInTopN.has(name)) continue;
        expect(bounded.has(label), `${name} has label "${label}", which is not known to be bounded`).toBe(true);
      }
    }
  });

  it('has every metric that a Grafana dashboard queries', () => {
    const files = readdirSync(dashboardsUrl).filter((f) => f.endsWith('.json'));
    expect(files.length, 'no dashboards in grafana/dashboards').toBeGreaterThan(0);
    for (const file of files) {
      const dashboard: unknown = JSON.parse(readFileSync(new URL(file, dashboardsUrl), 'utf8'));
      const queries = dashboardQueries(dashboard);
      expect(queries.length, `${file} has no queries`).toBeGreaterThan(0);
      const names = new Set(queries.flatMap((q) => q.match(/nemo_[a-z0-9_]+/g) ?? []));
      for (const name of names) {
        expect(resolves(name, types), `${file} queries ${name}, which the registry does not export`).toBe(true);
      }
    }
  });
});

/** A series name is known when it is a metric, or a histogram's _bucket/_sum/_count series. */
function resolves(series: string, types: Map<string, string>): boolean {
  if (types.has(series)) return true;
  const suffix = HISTOGRAM_SERIES_SUFFIXES.find((s) => series.endsWith(s));
  return suffix !== undefined && types.get(series.slice(0, -suffix.length)) === 'histogram';
}
