// Overview: the balance (available and held), spend today and this month, spend per day over the
// last 30 days, and the keys and models that spent most this month; from the credits and usage
// routes, which read the ledger's own data (so they match billing).
import { orgPath, type List } from '../api';
import { SpendChart, type DayPoint } from '../chart';
import { LoadState, Section, Table, useLoad } from '../components';
import { count, credits, dayRange, plural, startOfMonth, utcDay } from '../format';
import type { PageProps } from '../page-props';
import type { Credits, Key, Usage, UsageRow } from '../types';

const TOP = 5;
const DAYS = 30;

export function Overview({ api, orgId }: PageProps) {
  const loaded = useLoad(async () => {
    const days = dayRange(utcDay(-(DAYS - 1)), utcDay(0));
    const month = dayRange(startOfMonth(), utcDay(0));
    const [balance, perDay, byKey, byModel, keys] = await Promise.all([
      api.get<Credits>(orgPath(orgId, '/credits')),
      api.get<Usage>(orgPath(orgId, '/usage'), { ...days, group_by: 'day' }),
      api.get<Usage>(orgPath(orgId, '/usage'), { ...month, group_by: 'key' }),
      api.get<Usage>(orgPath(orgId, '/usage'), { ...month, group_by: 'model' }),
      api.get<List<Key>>(orgPath(orgId, '/keys')),
    ]);
    return { balance, perDay: perDay.data, byKey: byKey.data, byModel: byModel.data, keys: keys.data };
  }, [orgId]);

  return (
    <LoadState loaded={loaded}>
      {({ balance, perDay, byKey, byModel, keys }) => {
        const points = lastDays(perDay);
        const today = points[points.length - 1];
        const monthMicros = byKey.reduce((sum, r) => sum + r.charged_micros, 0);
        const monthRequests = byKey.reduce((sum, r) => sum + r.requests, 0);
        const keyName = (id: string | null | undefined) => (id ? keys.find((k) => k.id === id)?.name ?? id.slice(0, 8) : '(no key)');
        return (
          <>
            <dl class="stats">
              <Stat label="Available" value={credits(balance.available_micros)} unit="credits" />
              <Stat label="Held by running requests" value={credits(balance.held_micros)} unit="credits" />
              <Stat label="Spent today (UTC)" value={credits(today?.chargedMicros ?? 0)} unit={`credits · ${plural(today?.requests ?? 0, 'request')}`} />
              <Stat label="Spent this month" value={credits(monthMicros)} unit={`credits · ${plural(monthRequests, 'request')}`} />
            </dl>
            <Section title={`Spend over the last ${DAYS} days`}>
              <SpendChart points={points} />
            </Section>
            <div class="columns">
              <TopList title="Top keys this month" rows={byKey} name={(r) => keyName(r.key_id)} />
              <TopList title="Top models this month" rows={byModel} name={(r) => r.model ?? '(none)'} />
            </div>
          </>
        );
      }}
    </LoadState>
  );
}

function Stat({ label, value, unit }: { label: string; value: string; unit: string }) {
  return (
    <div class="stat card">
      <dt>{label}</dt>
      <dd>
        <span class="stat-value">{value}</span> <span class="muted">{unit}</span>
      </dd>
    </div>
  );
}

function TopList({ title, rows, name }: { title: string; rows: UsageRow[]; name(row: UsageRow): string }) {
  const top = [...rows].sort((a, b) => b.charged_micros - a.charged_micros || b.requests - a.requests).slice(0, TOP);
  return (
    <Section title={title}>
      <Table label={title} head={['Name', 'Requests', 'Charged (credits)']} empty={top.length === 0 && 'No requests this month.'}>
        {top.map((r) => (
          <tr key={name(r)}>
            <td>{name(r)}</td>
            <td class="num">{count(r.requests)}</td>
            <td class="num">{credits(r.charged_micros)}</td>
          </tr>
        ))}
      </Table>
    </Section>
  );
}

/** One point per UTC day of the last DAYS days, zero where the report has no row. */
function lastDays(rows: UsageRow[]): DayPoint[] {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  return Array.from({ length: DAYS }, (_, i) => {
    const day = utcDay(i - (DAYS - 1));
    const row = byDay.get(day);
    return { day, chargedMicros: row?.charged_micros ?? 0, requests: row?.requests ?? 0 };
  });
}
