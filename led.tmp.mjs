import pg from 'pg';
import { randomUUID } from 'node:crypto';
const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/perf_ledger', max: 2 });
const APPLY = `SELECT op, amount, refusal FROM nemo.ledger_apply_v4($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[],
  $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::integer, $18::integer)`;
const ORGS = Number(process.env.ORGS || 50);
const orgs = [];
for (let i = 0; i < ORGS; i++) {
  const id = randomUUID();
  await pool.query('SELECT * FROM nemo.create_org($1, $2)', [id, 'o' + i]);
  await pool.query("SELECT * FROM nemo.ledger_credit($1, 'topup', 1000000000000, $2, null)", [id, 'k' + i]);
  orgs.push(id);
}
function apply(ops) {
  const col = (f) => ops.map(f);
  return pool.query(APPLY, [col(o => o.kind), col(o => o.org), col(o => o.res), col(o => o.lease ?? null), col(o => o.req ?? null), col(() => null),
    col(o => o.amount), col(o => o.min ?? 0), col(() => 0), col(() => 'm'), col(o => o.kind === 'charge' ? 10 : null), col(o => o.kind === 'charge' ? 16 : null), col(() => null), col(() => null), col(() => null), col(() => null), 120000, 60000]);
}
const leases = new Map();
const lops = orgs.map(org => { const res = randomUUID(); leases.set(org, res); return { kind: 'lease', org, res, req: 'inst', amount: 1e11, min: 1 }; });
console.log((await apply(lops)).rows.slice(0, 2));
const N = Number(process.argv[2] || 64);
for (let round = 0; round < Number(process.argv[3] || 6); round++) {
  const t0 = performance.now();
  let count = 0;
  for (let b = 0; b < 50; b++) {
    const ops = [];
    for (let i = 0; i < N; i++) { const org = orgs[(b * N + i) % ORGS]; ops.push({ kind: 'charge', org, res: randomUUID(), lease: leases.get(org), req: 'r' + i, amount: 42 }); }
    await apply(ops); count += N;
  }
  const ms = performance.now() - t0;
  console.log(`batch ${N}: ${(ms / 50).toFixed(2)} ms a batch, ${(ms / count * 1000).toFixed(1)} us a charge (wall)`);
}
await pool.end();
