// Request logs: a filtered list, newest first, paged back with the API's cursor (the last row's
// created_at and log_id), and a detail view. The list never carries bodies; where the org logs them
// (logging level full) the detail reads them from the log export of the row's own millisecond.
import { useState } from 'preact/hooks';
import { orgPath, type Api, type List } from '../api';
import { CursorPager, Dialog, ErrorMessage, Field, LoadState, Section, Table, useLoad } from '../components';
import { count, credits, ms, prettyJson, shortId, time } from '../format';
import type { PageProps } from '../page-props';
import type { Key, LogRow, Model, OrgConfig, Team } from '../types';

const PAGE = 25;

interface Filters {
  status_class: string;
  key_id: string;
  team_id: string;
  model: string;
  request_id: string;
}

const NO_FILTERS: Filters = { status_class: '', key_id: '', team_id: '', model: '', request_id: '' };

export function Logs({ api, orgId }: PageProps) {
  const context = useLoad(async () => {
    const [keys, teams, models, config] = await Promise.all([
      api.get<List<Key>>(orgPath(orgId, '/keys')),
      api.get<List<Team>>(orgPath(orgId, '/teams')),
      api.get<List<Model>>('/v1/models'),
      api.get<OrgConfig>(orgPath(orgId, '/config')),
    ]);
    return { keys: keys.data, teams: teams.data, models: models.data, loggingLevel: config.logging_level };
  }, [orgId]);
  const [draft, setDraft] = useState(NO_FILTERS);
  const [filters, setFilters] = useState(NO_FILTERS);
  // The cursor each page started before: [undefined] is the newest page.
  const [cursors, setCursors] = useState<Array<LogRow | undefined>>([undefined]);
  const last = cursors[cursors.length - 1];
  const rows = useLoad(
    async () => (await api.get<List<LogRow>>(orgPath(orgId, '/logs'), { ...filters, limit: PAGE, before: last?.created_at, before_log_id: last?.log_id })).data,
    [orgId, JSON.stringify(filters), last?.log_id],
  );
  const [open, setOpen] = useState<LogRow>();
  const set = (name: keyof Filters) => (event: Event) => setDraft({ ...draft, [name]: (event.currentTarget as HTMLInputElement | HTMLSelectElement).value });
  const apply = (event: Event) => {
    event.preventDefault();
    setCursors([undefined]);
    if (JSON.stringify(draft) === JSON.stringify(filters)) rows.reload();
    else setFilters(draft);
  };
  const keyName = (id: string | null) => (id === null ? '—' : context.data?.keys.find((k) => k.id === id)?.name ?? shortId(id));

  return (
    <>
      <Section title="Filters">
        <form onSubmit={apply} class="form-row">
          <Field label="Status">
            <select name="status_class" value={draft.status_class} onChange={set('status_class')}>
              <option value="">any</option>
              {['2xx', '4xx', '5xx', 'client_closed'].map((c) => (
                <option value={c} key={c}>
                  {c}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Key">
            <select name="key_id" value={draft.key_id} onChange={set('key_id')}>
              <option value="">any</option>
              {context.data?.keys.map((k) => (
                <option value={k.id} key={k.id}>
                  {k.name}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Team">
            <select name="team_id" value={draft.team_id} onChange={set('team_id')}>
              <option value="">any</option>
              {context.data?.teams.map((t) => (
                <option value={t.id} key={t.id}>
                  {t.name}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Model">
            <select name="model" value={draft.model} onChange={set('model')}>
              <option value="">any</option>
              {context.data?.models.map((m) => (
                <option value={m.id} key={m.id}>
                  {m.id}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Request id">
            <input name="request_id" value={draft.request_id} onInput={set('request_id')} />
          </Field>
          <div class="actions">
            <button type="submit">Apply filters</button>
          </div>
        </form>
        <ErrorMessage error={context.error} />
      </Section>
      <Section title="Requests, newest first">
        <LoadState loaded={rows}>
          {(page) => (
            <>
              <Table
                label="Requests"
                head={['Time', 'Status', 'Model', 'Key', 'Tokens in / out', 'Cost (credits)', 'Latency', 'TTFT', 'Guardrail', 'Details']}
                empty={page.length === 0 && 'No requests match.'}
              >
                {page.map((r) => (
                  <tr key={r.log_id}>
                    <td>{time(r.created_at)}</td>
                    <td>
                      <span class={`status status-${r.status_class}`}>{r.status}</span>
                      {r.error_code && <span class="muted"> {r.error_code}</span>}
                    </td>
                    <td>{r.model ?? '—'}</td>
                    <td>{keyName(r.key_id)}</td>
                    <td class="num">
                      {count(r.prompt_tokens)} / {count(r.completion_tokens)}
                    </td>
                    <td class="num">{credits(r.cost_micros)}</td>
                    <td class="num">{ms(r.latency_ms)}</td>
                    <td class="num">{ms(r.ttft_ms)}</td>
                    <td>{r.guardrail_action}</td>
                    <td>
                      <button type="button" class="quiet" onClick={() => setOpen(r)} aria-label={`Details of request ${r.request_id}`}>
                        Details
                      </button>
                    </td>
                  </tr>
                ))}
              </Table>
              <CursorPager
                label="Requests"
                hasNewer={cursors.length > 1}
                hasOlder={page.length === PAGE}
                onNewest={() => setCursors([undefined])}
                onOlder={() => setCursors([...cursors, page[page.length - 1]])}
              />
            </>
          )}
        </LoadState>
      </Section>
      {open && <LogDetail api={api} orgId={orgId} row={open} keyName={keyName(open.key_id)} loggingLevel={context.data?.loggingLevel} onClose={() => setOpen(undefined)} />}
    </>
  );
}

function LogDetail({ api, orgId, row, keyName, loggingLevel, onClose }: { api: Api; orgId: string; row: LogRow; keyName: string; loggingLevel: string | undefined; onClose(): void }) {
  const bodies = useLoad(() => (row.has_bodies ? bodiesOf(api, orgId, row) : Promise.resolve(undefined)), [row.log_id]);
  const fields: Array<[string, string]> = [
    ['Time', time(row.created_at)],
    ['Request id', row.request_id],
    ['Status', `${row.status} (${row.status_class})${row.error_code ? `, ${row.error_code}` : ''}`],
    ['Model', row.model ?? '—'],
    ['Deployment', row.deployment ?? '—'],
    ['Key', keyName],
    ['Stream', row.stream ? 'yes' : 'no'],
    ['Prompt tokens', count(row.prompt_tokens)],
    ['Completion tokens', count(row.completion_tokens)],
    ['Cost', `${credits(row.cost_micros)} credits`],
    ['Latency', ms(row.latency_ms)],
    ['Time to first token', ms(row.ttft_ms)],
    ['Guardrail', row.guardrail_rules.length === 0 ? row.guardrail_action : `${row.guardrail_action}: ${row.guardrail_rules.join(', ')}`],
  ];
  return (
    <Dialog title={`Request ${row.request_id}`} onClose={onClose}>
      <dl class="detail">
        {fields.map(([name, value]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
      <h3>Bodies</h3>
      {!row.has_bodies ? (
        <p class="muted">
          No bodies were logged for this request: the organization's logging level is {loggingLevel ?? 'not full'}, and bodies are kept only at level full.
        </p>
      ) : (
        <LoadState loaded={bodies}>
          {(found) =>
            found === undefined ? (
              <p class="muted">The export holds no bodies for this request any more (past its retention).</p>
            ) : (
              <>
                <h4>Request</h4>
                <pre tabIndex={0}>{readable(found.request_body)}</pre>
                <h4>Response</h4>
                <pre tabIndex={0}>{readable(found.response_body)}</pre>
              </>
            )
          }
        </LoadState>
      )}
    </Dialog>
  );
}

interface ExportedRow {
  created_at: string;
  request_id: string;
  request_body: string | null;
  response_body: string | null;
}

/** The row's bodies, from the NDJSON log export of the millisecond it was written in. */
async function bodiesOf(api: Api, orgId: string, row: LogRow): Promise<ExportedRow | undefined> {
  // created_at has microseconds (fixed width); a Date holds milliseconds.
  const at = Date.parse(`${row.created_at.slice(0, 23)}Z`);
  const { blob } = await api.download(orgPath(orgId, '/logs/export'), { from: new Date(at).toISOString(), to: new Date(at + 1).toISOString(), format: 'ndjson' });
  const lines = (await blob.text()).split('\n').filter((line) => line !== '');
  return lines.map((line) => JSON.parse(line) as ExportedRow).find((r) => r.request_id === row.request_id && r.created_at === row.created_at);
}

function readable(body: string | null): string {
  if (body === null) return '(none)';
  try {
    return prettyJson(JSON.parse(body));
  } catch {
    return body;
  }
}
