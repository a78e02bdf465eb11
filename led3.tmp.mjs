import pg from 'pg';
import { randomUUID } from 'node:crypto';
const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/perf_ledger' });
await c.connect();
const APPLY = `SELECT op, amount, refusal FROM nemo.ledger_apply_v4($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[],
  $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::integer, $18::integer)`;
const { rows } = await c.query("SELECT org_id FROM nemo.credit_accounts LIMIT 64");
const N = 64;
const mk = (kind, list) => { const col = (f) => list.map(f); return [col(() => kind), col(o => o.org), col(o => o.res), col(() => null), col((o, i) => 'r' + i), col(() => null), col(() => kind === 'reserve' ? 1000 : 42), col(() => 1), col(() => 10), col(() => 'm'), col(() => kind === 'settle' ? 10 : null), col(() => kind === 'settle' ? 16 : null), col(() => null), col(() => null), col(() => null), col(() => null), 120000, 60000]; };
async function round() {
  const list = rows.map(r => ({ org: r.org_id, res: randomUUID() }));
  const t0 = performance.now();
  await c.query(APPLY, mk('reserve', list));
  const t1 = performance.now();
  await c.query(APPLY, mk('settle', list));
  return [t1 - t0, performance.now() - t1];
}
for (let i = 0; i < 30; i++) await round();
let a = 0, b = 0;
for (let i = 0; i < 30; i++) { const [x, y] = await round(); a += x; b += y; }
console.log('reserve batch ms', (a / 30).toFixed(2), 'settle batch ms', (b / 30).toFixed(2));
if (process.argv[2] === 'explain') {
  c.on('notice', (n) => console.log(n.message));
  await c.query("LOAD 'auto_explain'");
  await c.query("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on; SET auto_explain.log_level = notice; SET client_min_messages = notice");
  await round();
}
await c.end();
