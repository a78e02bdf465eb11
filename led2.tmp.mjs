import pg from 'pg';
import { randomUUID } from 'node:crypto';
const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/perf_ledger' });
await c.connect();
c.on('notice', (n) => console.log(n.message));
const APPLY = `SELECT op, amount, refusal FROM nemo.ledger_apply_v4($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[],
  $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::integer, $18::integer)`;
const { rows } = await c.query("SELECT org_id, reservation_id FROM nemo.reservations WHERE kind = 'lease' AND state = 'reserved'");
const N = 64;
const ops = [];
for (let i = 0; i < N; i++) { const r = rows[i % rows.length]; ops.push({ org: r.org_id, lease: r.reservation_id }); }
const col = (f) => ops.map(f);
const args = () => [col(() => 'charge'), col(o => o.org), col(() => randomUUID()), col(o => o.lease), col((o, i) => 'r' + i), col(() => null), col(() => 42), col(() => 0), col(() => 0), col(() => 'm'), col(() => 10), col(() => 16), col(() => null), col(() => null), col(() => null), col(() => null), 120000, 60000];
for (let i = 0; i < 20; i++) await c.query(APPLY, args());
await c.query("LOAD 'auto_explain'");
await c.query("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on; SET auto_explain.log_timing = on; SET auto_explain.log_triggers = on; SET auto_explain.log_level = notice; SET client_min_messages = notice");
await c.query(APPLY, args());
await c.end();
