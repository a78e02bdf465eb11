// The money admin API: a credit repeated with the same idempotency key applies once (also when the
// repeats race), other keys apply again, refunds and adjustments go through the same door, an
// adjustment below zero is refused whole, and GET credits / GET ledger show exactly that.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { adminClient, type AdminMethod } from '../../support/admin-client.js';
import { Books } from './money-helpers.js';

const MASTER_KEY = 'idempotency-test-master-key-42';
const MODELS = [{ name: 'm', deployments: [{ provider: 'mock', model: 'm' }] }];

interface CreditAnswer {
  readonly org_id: string;
  readonly entry_id: number;
  readonly created: boolean;
  readonly available_micros: number;
  readonly held_micros: number;
}

interface LedgerEntry {
  readonly id: number;
  readonly kind: string;
  readonly available_delta: number;
  readonly held_delta: number;
  readonly charged: number;
  readonly idempotency_key: string | null;
  readonly note: string | null;
}

describe('credits through the admin API', () => {
  let gw: TestGateway;
  let books: Books;
  let orgId: string;
  const master = { authorization: `Bearer ${MASTER_KEY}` };

  const call = (method: AdminMethod, path: string, body?: unknown, auth: Record<string, string> = master) => adminClient(gw.url, auth).call(method, path, body);
  const credit = async (body: Record<string, unknown>): Promise<CreditAnswer> => {
    const answer = await call('POST', `/orgs/${orgId}/credits`, body);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return answer.body as unknown as CreditAnswer;
  };
  const available = async (): Promise<number> => {
    const answer = await call('GET', `/orgs/${orgId}/credits`);
    expect(answer.status).toBe(200);
    expect(answer.body.held_micros).toBe(0);
    return answer.body.available_micros as number;
  };
  const ledger = async (query = ''): Promise<LedgerEntry[]> => {
    const answer = await call('GET', `/orgs/${orgId}/ledger${query}`);
    expect(answer.status).toBe(200);
    expect(answer.body.object).toBe('list');
    return answer.body.data as LedgerEntry[];
  };

  beforeAll(async () => {
    gw = await startTestGateway({ models: MODELS }, { NEMO_MASTER_KEY: MASTER_KEY });
    books = new Books(gw.database);
    const org = await call('POST', '/orgs', { name: 'credits org' });
    expect(org.status).toBe(201);
    orgId = org.body.id as string;
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
  });

  it('a new org starts with nothing and an empty ledger', async () => {
    expect(await available()).toBe(0);
    expect(await ledger()).toEqual([]);
  });

  it('the same idempotency key credits once: the repeat answers created:false with the same entry', async () => {
    const first = await credit({ amount_micros: 1_000, idempotency_key: 'topup-a', note: 'first' });
    expect(first).toMatchObject({ org_id: orgId, created: true, available_micros: 1_000, held_micros: 0 });
    const again = await credit({ amount_micros: 1_000, idempotency_key: 'topup-a', note: 'first' });
    expect(again).toMatchObject({ created: false, entry_id: first.entry_id, available_micros: 1_000 });
    // A repeat with another amount is still the same operation: nothing more is applied.
    const changed = await credit({ amount_micros: 5_000, idempotency_key: 'topup-a' });
    expect(changed).toMatchObject({ created: false, entry_id: first.entry_id, available_micros: 1_000 });
    expect(await available()).toBe(1_000);
    const entries = await ledger();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ id: first.entry_id, kind: 'topup', available_delta: 1_000, held_delta: 0, charged: 0, idempotency_key: 'topup-a', note: 'first' });
  });

  it('different keys credit twice', async () => {
    const b = await credit({ amount_micros: 1_000, idempotency_key: 'topup-b' });
    expect(b.created).toBe(true);
    expect(b.available_micros).toBe(2_000);
    expect(await available()).toBe(2_000);
    expect((await ledger()).filter((e) => e.kind === 'topup')).toHaveLength(2);
  });

  it('twenty racing repeats of one key credit once, and all name the same entry', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => call('POST', `/orgs/${orgId}/credits`, { amount_micros: 7, idempotency_key: 'topup-race' })));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    const bodies = answers.map((a) => a.body as unknown as CreditAnswer);
    expect(bodies.filter((b) => b.created)).toHaveLength(1);
    expect(new Set(bodies.map((b) => b.entry_id)).size).toBe(1);
    expect(await available()).toBe(2_007);
  });

  it('refunds and adjustments (either sign) apply once per key', async () => {
    const refund = await credit({ kind: 'refund', amount_micros: 300, idempotency_key: 'refund-1', note: 'bad answer' });
    expect(refund).toMatchObject({ created: true, available_micros: 2_307 });
    expect(await credit({ kind: 'refund', amount_micros: 300, idempotency_key: 'refund-1' })).toMatchObject({ created: false, entry_id: refund.entry_id });
    const up = await credit({ kind: 'adjustment', amount_micros: 50, idempotency_key: 'adj-up' });
    expect(up).toMatchObject({ created: true, available_micros: 2_357 });
    const down = await credit({ kind: 'adjustment', amount_micros: -57, idempotency_key: 'adj-down' });
    expect(down).toMatchObject({ created: true, available_micros: 2_300 });
    expect(await credit({ kind: 'adjustment', amount_micros: -57, idempotency_key: 'adj-down' })).toMatchObject({ created: false, entry_id: down.entry_id, available_micros: 2_300 });
    expect(await available()).toBe(2_300);
    const byKey = new Map((await ledger()).map((e) => [e.idempotency_key, e]));
    expect(byKey.get('refund-1')).toMatchObject({ kind: 'refund', available_delta: 300, note: 'bad answer' });
    expect(byKey.get('adj-up')).toMatchObject({ kind: 'adjustment', available_delta: 50 });
    expect(byKey.get('adj-down')).toMatchObject({ kind: 'adjustment', available_delta: -57 });
  });

  it('an adjustment below zero is a 400 and changes nothing; its key stays unused', async () => {
    const entriesBefore = await ledger();
    const refused = await call('POST', `/orgs/${orgId}/credits`, { kind: 'adjustment', amount_micros: -2_301, idempotency_key: 'adj-too-far' });
    expect(refused.status).toBe(400);
    expect((refused.body.error as { type: string }).type).toBe('invalid_request_error');
    expect(await available()).toBe(2_300);
    expect(await ledger()).toEqual(entriesBefore);
    // Nothing was recorded under the key: a valid adjustment may use it now.
    expect(await credit({ kind: 'adjustment', amount_micros: -2_300, idempotency_key: 'adj-too-far' })).toMatchObject({ created: true, available_micros: 0 });
    expect(await available()).toBe(0);
    expect(await credit({ amount_micros: 2_300, idempotency_key: 'topup-back' })).toMatchObject({ created: true, available_micros: 2_300 });
  });

  it('malformed credits are 400s and change nothing', async () => {
    const entriesBefore = await ledger();
    const bad: Array<Record<string, unknown>> = [
      { amount_micros: 0, idempotency_key: 'zero' },
      { amount_micros: -5, idempotency_key: 'negative-topup' },
      { kind: 'refund', amount_micros: -5, idempotency_key: 'negative-refund' },
      { amount_micros: 1.5, idempotency_key: 'fraction' },
      { amount_micros: 2 ** 53, idempotency_key: 'unsafe' },
      { amount_micros: 10 },
      { amount_micros: 10, idempotency_key: '' },
      { amount_micros: 10, idempotency_key: 'k'.repeat(201) },
      { amount_micros: 10, idempotency_key: 'kind', kind: 'settle' },
      { amount_micros: 10, idempotency_key: 'extra', org_id: orgId },
    ];
    for (const body of bad) {
      const answer = await call('POST', `/orgs/${orgId}/credits`, body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
    }
    expect(await available()).toBe(2_300);
    expect(await ledger()).toEqual(entriesBefore);
  });

  it('only the platform changes credits; an org admin key reads them', async () => {
    const key = await call('POST', `/orgs/${orgId}/keys`, { name: 'org admin', role: 'admin' });
    expect(key.status).toBe(201);
    const orgAdmin = { authorization: `Bearer ${key.body.key as string}` };
    const refused = await call('POST', `/orgs/${orgId}/credits`, { amount_micros: 1_000_000, idempotency_key: 'self-service' }, orgAdmin);
    expect(refused.status).toBe(403);
    // Another org's credits do not exist for this key.
    const other = await call('POST', `/orgs/${gw.orgId}/credits`, { amount_micros: 1, idempotency_key: 'elsewhere' }, orgAdmin);
    expect(other.status).toBe(404);
    const read = await call('GET', `/orgs/${orgId}/credits`, undefined, orgAdmin);
    expect(read).toMatchObject({ status: 200, body: { org_id: orgId, available_micros: 2_300, held_micros: 0 } });
  });

  it('GET ledger pages newest first, sums to the balance, and the books check out', async () => {
    const all = await ledger();
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => b - a));
    expect(all.reduce((sum, e) => sum + e.available_delta, 0)).toBe(await available());
    expect(all.map((e) => e.idempotency_key)).toEqual(['topup-back', 'adj-too-far', 'adj-down', 'adj-up', 'refund-1', 'topup-race', 'topup-b', 'topup-a']);
    const firstPage = await ledger('?limit=3');
    expect(firstPage).toEqual(all.slice(0, 3));
    expect(await ledger(`?limit=3&before=${firstPage[2]!.id}`)).toEqual(all.slice(3, 6));
    expect(await books.check()).toEqual([]);
    expect(await books.account(orgId)).toEqual({ available: 2_300, held: 0 });
  });
});
