// Every query a Grafana dashboard JSON would send to Prometheus, with Grafana's variables replaced by
// what an "All"-selected dashboard sends: panel targets (rows and nested panels included) and the
// template variables' own queries. Unknown variables are an error, never a silent skip.

/** Grafana's built-in interval variables, as they resolve for a 1 s scrape over a few minutes' range. */
export const BUILTIN_VARIABLES: Readonly<Record<string, string>> = {
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

export interface PanelQuery {
  file: string;
  panelId: number | undefined;
  panelTitle: string;
  refId: string;
  /** As written in the dashboard. */
  raw: string;
  /** Sent to Prometheus; undefined when a variable could not be resolved (see `problem`). */
  expr: string | undefined;
  problem: string | undefined;
}

export interface VariableQuery {
  file: string;
  name: string;
  definition: string;
}

interface GrafanaPanel {
  id?: number;
  title?: string;
  targets?: Array<{ refId?: string; expr?: unknown; hide?: boolean }>;
  panels?: GrafanaPanel[];
}

interface GrafanaVariable {
  name?: string;
  type?: string;
  includeAll?: boolean;
  allValue?: string | null;
  definition?: string;
  query?: unknown;
  current?: { value?: string | string[] };
}

interface GrafanaDashboard {
  panels?: GrafanaPanel[];
  templating?: { list?: GrafanaVariable[] };
}

/** What each dashboard variable expands to: `allValue` when All is offered, else the saved value. */
function variableValues(dashboard: GrafanaDashboard): Map<string, string | undefined> {
  const values = new Map<string, string | undefined>(Object.entries(BUILTIN_VARIABLES));
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.name === undefined) continue;
    if (variable.type === 'datasource') {
      // Only ever in datasource uids, never in an expression.
      values.set(variable.name, undefined);
    } else if (variable.includeAll === true && typeof variable.allValue === 'string' && variable.allValue !== '') {
      values.set(variable.name, variable.allValue);
    } else {
      const current = variable.current?.value;
      const list = Array.isArray(current) ? current : current === undefined ? [] : [current];
      values.set(variable.name, list.length === 0 || list.includes('$__all') ? undefined : list.join('|'));
    }
  }
  return values;
}

// $name, ${name}, ${name:format}, [[name]]
const VARIABLE = /\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]/g;

function substitute(raw: string, values: Map<string, string | undefined>): { expr: string | undefined; problem: string | undefined } {
  const unresolved = new Set<string>();
  const expr = raw.replace(VARIABLE, (match, braced?: string, bare?: string, bracketed?: string) => {
    const name = braced ?? bare ?? bracketed ?? '';
    const value = values.get(name);
    if (value === undefined) {
      unresolved.add(name);
      return match;
    }
    return value;
  });
  if (unresolved.size > 0) return { expr: undefined, problem: `unresolved variable(s): ${[...unresolved].map((n) => `$${n}`).join(', ')}` };
  return { expr, problem: undefined };
}

function collectPanels(panels: GrafanaPanel[] | undefined, out: GrafanaPanel[] = []): GrafanaPanel[] {
  for (const panel of panels ?? []) {
    out.push(panel);
    collectPanels(panel.panels, out);
  }
  return out;
}

export function panelQueries(file: string, dashboard: GrafanaDashboard): PanelQuery[] {
  const values = variableValues(dashboard);
  const queries: PanelQuery[] = [];
  for (const panel of collectPanels(dashboard.panels)) {
    for (const target of panel.targets ?? []) {
      if (typeof target.expr !== 'string' || target.expr.trim() === '') continue;
      const { expr, problem } = substitute(target.expr, values);
      queries.push({ file, panelId: panel.id, panelTitle: panel.title ?? '(untitled)', refId: target.refId ?? '?', raw: target.expr, expr, problem });
    }
  }
  return queries;
}

export function variableQueries(file: string, dashboard: GrafanaDashboard): VariableQuery[] {
  const out: VariableQuery[] = [];
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query' || variable.name === undefined) continue;
    const query = variable.query;
    const definition =
      variable.definition ?? (typeof query === 'string' ? query : typeof query === 'object' && query !== null ? String((query as { query?: unknown }).query ?? '') : '');
    out.push({ file, name: variable.name, definition });
  }
  return out;
}

/** `label_values(metric, label)` or `label_values(label)`; undefined for any other variable query. */
export function parseLabelValues(definition: string): { match: string | undefined; label: string } | undefined {
  const found = /^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$/.exec(definition);
  if (found === null) return undefined;
  return { match: found[1], label: found[2]! };
}
