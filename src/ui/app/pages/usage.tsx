// Usage and ledger: the usage report for a range of UTC days grouped by any of day, key, team and
// model; the newest ledger entries, paged back by entry id; and export downloads (request logs or
// ledger entries, NDJSON or CSV) streamed by the gateway and saved by the browser.
import { useState } from 'preact/hooks';
import { orgPath, type Api, type List } from '../api';
import { ErrorMessage, Field, LoadState, CursorPager, Pager, PAGE_SIZE, Section, Table, useLoad, usePages, useSubmit } from '../components';
import { count, credits, dayRange, plural, shortId, startOfMonth, time, utcDay } from '../format';
import type { PageProps } from '../page-props';
import type { Key, LedgerEntry, Team, Usage } from '../types';

const GROUPS = ['day', 'key', 'team', 'model'] as const;

export function UsageAndLedger({ api, orgId }: PageProps) {
  const names = useLoad(async () => {
    const [keys, teams] = await Promise.all([api.get<List<Key>>(orgPath(orgId, '/keys')), api.get<List<Team>>(orgPath(orgId, '/teams'))]);
    return { keys: new Map(keys.data.map((k) => [k.id, k.name])), teams: new Map(teams.data.map((t) => [t.id, t.name])) };
  }, [orgId]);
  const keyName = (id: string | null | undefined) => (id ? names.data?.keys.get(id) ?? shortId(id) : '—');
  const teamName = (id: string | null | undefined) => (id ? names.data?.teams.get(id) ?? shortId(id) : '—');
  return (
    <>
      <UsageReport api={api} orgId={orgId} keyName={keyName} teamName={teamName} />
      <Ledger api={api} orgId={orgId} keyName={keyName} />
      <Exports api={api} orgId={orgId} />
    </>
  );
}

type Namer = (id: string | null | undefined) => string;

function UsageReport({ api, orgId, keyName, teamName }: { api: Api; orgId: string; keyName: Namer; teamName: Namer }) {
  const [first, setFirst] = useState(startOfMonth());
  const [last, setLast] = useState(utcDay(0));
  const [groups, setGroups] = useState<string[]>(['day']);
  const [query, setQuery] = useState({ first, last, groups });
  const loaded = useLoad(
    () => api.get<Usage>(orgPath(orgId, '/usage'), { ...dayRange(query.first, query.last), group_by: query.groups.join(',') }),
    [orgId, query.first, query.last, query.groups.join(',')],
  );
  const show = (event: Event) => {
    event.preventDefault();
    if (query.first === first && query.last === last && query.groups.join() === groups.join()) loaded.reload();
    else setQuery({ first, last, groups });
  };
  const toggle = (group: string, on: boolean) => setGroups((list) => GROUPS.filter((g) => (g === group ? on : list.includes(g))));
  return (
    <Section title="Usage">
      <form onSubmit={show} class="form-row">
        <Field label="From (UTC day)">
          <input type="date" name="from" required value={first} onInput={(e) => setFirst(e.currentTarget.value)} />
        </Field>
        <Field label="To (UTC day, included)">
          <input type="date" name="to" required value={last} onInput={(e) => setLast(e.currentTarget.value)} />
        </Field>
        <fieldset class="choice">
          <legend>Group by</legend>
          {GROUPS.map((g) => (
            <label key={g}>
              <input type="checkbox" name="group_by" value={g} checked={groups.includes(g)} onChange={(e) => toggle(g, e.currentTarget.checked)} /> {g}
            </label>
          ))}
        </fieldset>
        <div class="actions">
          <button type="submit">Show usage</button>
        </div>
      </form>
      <LoadState loaded={loaded}>{(usage) => <UsageTable usage={usage} keyName={keyName} teamName={teamName} />}</LoadState>
    </Section>
  );
}

function UsageTable({ usage, keyName, teamName }: { usage: Usage; keyName: Namer; teamName: Namer }) {
  const paged = usePages(usage.data);
  const cell = (group: string, row: Usage['data'][number]) =>
    group === 'day' ? row.day : group === 'key' ? keyName(row.key_id) : group === 'team' ? teamName(row.team_id) : row.model ?? '—';
  const total = usage.data.reduce((sum, r) => sum + r.charged_micros, 0);
  return (
    <>
      <p class="muted">
        {plural(usage.data.reduce((sum, r) => sum + r.requests, 0), 'request')}, {credits(total)} credits charged, from {time(usage.from)} to {time(usage.to)}.
      </p>
      <Table label="Usage" head={[...usage.group_by, 'Requests', 'Charged (credits)', 'Held (credits)']} empty={usage.data.length === 0 && 'No requests in this range.'}>
        {paged.rows.map((row, i) => (
          <tr key={i}>
            {usage.group_by.map((g) => (
              <td key={g}>{cell(g, row)}</td>
            ))}
            <td class="num">{count(row.requests)}</td>
            <td class="num">{credits(row.charged_micros)}</td>
            <td class="num">{credits(row.held_micros)}</td>
          </tr>
        ))}
      </Table>
      <Pager label="Usage" {...paged} />
    </>
  );
}

function Ledger({ api, orgId, keyName }: { api: Api; orgId: string; keyName: Namer }) {
  // The ids each page started before: [undefined] is the newest page.
  const [cursors, setCursors] = useState<Array<number | undefined>>([undefined]);
  const before = cursors[cursors.length - 1];
  const loaded = useLoad(async () => (await api.get<List<LedgerEntry>>(orgPath(orgId, '/ledger'), { limit: PAGE_SIZE, before })).data, [orgId, before]);
  return (
    <Section title="Newest ledger entries">
      <LoadState loaded={loaded}>
        {(entries) => (
          <>
            <Table label="Ledger entries" head={['Time', 'Entry', 'Kind', 'Available Δ', 'Held Δ', 'Charged', 'Key', 'Request or note']} empty={entries.length === 0 && 'No entries.'}>
              {entries.map((e) => (
                <tr key={e.id}>
                  <td>{time(e.created_at)}</td>
                  <td class="num">{e.id}</td>
                  <td>{e.kind}</td>
                  <td class="num">{credits(e.available_delta)}</td>
                  <td class="num">{credits(e.held_delta)}</td>
                  <td class="num">{credits(e.charged)}</td>
                  <td>{keyName(e.key_id)}</td>
                  <td class="wrap">{e.request_id ?? e.note ?? e.idempotency_key ?? '—'}</td>
                </tr>
              ))}
            </Table>
            <CursorPager
              label="Ledger"
              hasNewer={cursors.length > 1}
              hasOlder={entries.length === PAGE_SIZE}
              onNewest={() => setCursors([undefined])}
              onOlder={() => setCursors([...cursors, entries[entries.length - 1]!.id])}
            />
          </>
        )}
      </LoadState>
    </Section>
  );
}

function Exports({ api, orgId }: { api: Api; orgId: string }) {
  const [kind, setKind] = useState<'logs' | 'ledger'>('logs');
  const [format, setFormat] = useState<'ndjson' | 'csv'>('ndjson');
  const [first, setFirst] = useState(utcDay(-6));
  const [last, setLast] = useState(utcDay(0));
  const [done, setDone] = useState<string>();
  const { busy, error, submit } = useSubmit(async () => {
    setDone(undefined);
    const { blob, fileName } = await api.download(orgPath(orgId, `/${kind}/export`), { ...dayRange(first, last), format });
    saveBlob(blob, fileName);
    setDone(`Downloaded ${fileName} (${count(blob.size)} bytes).`);
  });
  return (
    <Section title="Exports">
      <form onSubmit={submit} class="form-row">
        <Field label="What">
          <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as 'logs' | 'ledger')}>
            <option value="logs">Request logs</option>
            <option value="ledger">Ledger entries</option>
          </select>
        </Field>
        <Field label="From (UTC day)">
          <input type="date" name="from" required value={first} onInput={(e) => setFirst(e.currentTarget.value)} />
        </Field>
        <Field label="To (UTC day, included)">
          <input type="date" name="to" required value={last} onInput={(e) => setLast(e.currentTarget.value)} />
        </Field>
        <fieldset class="choice">
          <legend>Format</legend>
          <label>
            <input type="radio" name="format" value="ndjson" checked={format === 'ndjson'} onChange={() => setFormat('ndjson')} /> NDJSON
          </label>
          <label>
            <input type="radio" name="format" value="csv" checked={format === 'csv'} onChange={() => setFormat('csv')} /> CSV
          </label>
        </fieldset>
        <div class="actions">
          <button type="submit" disabled={busy}>
            {busy ? 'Downloading…' : 'Download'}
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      <p role="status" class="muted">
        {done}
      </p>
    </Section>
  );
}

/** Hands a downloaded file to the browser's save. */
function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
