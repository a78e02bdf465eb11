// PostgreSQL stopped under load and started again, on a cluster of this file's own (never the
// machine's, never the one other suites use): new requests fail closed at once (503, OpenAI error
// JSON, and the upstream sees no request without a hold), /readyz says not ready, streams that already
// hold credits finish and their settles are retried until they commit (once each), and the gateway
// serves again within 5 s of the database's return without a restart. Then a restart that falls
// between the reserve and the settle of running requests: each is charged exactly once.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as PgClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.js';
import { startGateway, type Gateway } from '../../src/main.js';
import { mockDispatcherFor } from '../../src/providers/mock/index.js';
import { fundedOrg, ledgerCheckCli } from '../integration/ledger/money-helpers.js';
import { LEDGER_MODE, SOAK, auditBooks, chargesByRequest, chat, expectCharged, mockPromptTokens, recordChaos, sleep, waitNoOpenHolds, type ChatOutcome } from './helpers/chaos-kit.js';
import { HTTP_SERVER_ENV } from '../support/http-server-env.js';
import { withTestLedger } from '../support/ledger-defaults.js';

const APP_PASSWORD = 'nemo_app_chaos_outage_password';
const IN = 1;
const OUT = 3;
const mockModel = (name: string, mock: Record<string, unknown>) => ({ name, deployments: [{ provider: 'mock', model: name, inputPricePerMTok: IN, outputPricePerMTok: OUT, mock }] });
const MODELS = [
  mockModel('chat', { completionTokens: 4 }),
  // 45 tokens at 30 per second: a stream of 1.5 s.
  mockModel('stream', { tokensPerSecond: 30, completionTokens: 45 }),
  mockModel('long-stream', { tokensPerSecond: 15, completionTokens: 60 }),
  // A complete answer that takes 2.5 s to arrive.
  mockModel('slow-chat', { ttftMs: 2_500, completionTokens: 4 }),
];
const TOKENS: Record<string, number> = { chat: 4, stream: 45, 'long-stream': 60, 'slow-chat': 4 };
const PROMPT = 'keep my money safe';
const cost = (model: string) => mockPromptTokens(PROMPT) * IN + TOKENS[model]! * OUT;

describe('chaos: PostgreSQL outage', () => {
  let dataDir: string;
  let pg: EmbeddedPostgres;
  let pgPort: number;
  let gateway: Gateway;
  let url: string;
  const orgs: Array<{ orgId: string; authorization: string; tag: string }> = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'nemo-chaos-pg-'));
    chmodSync(dataDir, 0o755);
    pg = await startEmbeddedPostgres({ dataDir });
    pgPort = Number(new URL(pg.ownerUrl).port);
    const config = buildConfig(
      withTestLedger({ server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 500 }, ledger: { reservationTtlMs: 120_000 }, models: MODELS }),
      { DATABASE_URL: pg.ownerUrl, NEMO_DB_APP_PASSWORD: APP_PASSWORD, ...HTTP_SERVER_ENV },
      'test',
    );
    gateway = await startGateway(config);
    url = `http://127.0.0.1:${gateway.port}`;
    for (const tag of ['outage-a', 'outage-b']) {
      const { orgId, auth } = await fundedOrg(gateway, 1e9, tag, { name: tag, role: 'member' });
      orgs.push({ orgId, authorization: auth.authorization, tag });
    }
  }, 90_000);

  afterAll(async () => {
    await gateway?.close(100);
    await pg?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  let seq = 0;
  const sent: Array<{ org: (typeof orgs)[number]; model: string; outcome: ChatOutcome; sentAt: number; answeredAt: number }> = [];
  const send = async (org: (typeof orgs)[number], model: string) => {
    const sentAt = Date.now();
    const outcome = await chat({ url, authorization: org.authorization, requestId: `${org.tag}-${++seq}`, model, content: PROMPT, stream: model.endsWith('stream'), maxTokens: 64 });
    const entry = { org, model, outcome, sentAt, answeredAt: Date.now() };
    sent.push(entry);
    return entry;
  };
  const ready = async () => (await fetch(`${url}/readyz`)).status;
  const upstreamRequests = (model: string) => mockDispatcherFor(gateway.config.models.get(model)!.deployments[0]!).stats.requests;
  const upstreamInFlight = (model: string) => mockDispatcherFor(gateway.config.models.get(model)!.deployments[0]!).stats.inFlight;
  const restartPostgres = async () => {
    pg = await startEmbeddedPostgres({ dataDir, port: pgPort });
    return Date.now();
  };

  it('fails closed while down, finishes reserved streams and settles them once, serves again within 5 s of the return', async () => {
    for (let i = 0; i < 4; i++) expect((await send(orgs[i % 2]!, 'chat')).outcome.complete).toBe(true);
    expect(await ready()).toBe(200);

    // Streams that hold credits when the database goes.
    const streams = Array.from({ length: 4 }, (_, i) => send(orgs[i % 2]!, 'stream'));
    while (upstreamInFlight('stream') < 4) await sleep(5);

    // Chats from four clients, without pause, through the whole outage.
    let loading = true;
    const worker = async (w: number) => {
      while (loading) {
        await send(orgs[w % 2]!, 'chat');
        await sleep(10);
      }
    };
    const load = Array.from({ length: 4 }, (_, w) => worker(w));
    await sleep(200);

    await pg.stop();
    const downAt = Date.now();
    // Requests already past their hold when it went still reach upstream; give them a moment.
    await sleep(300);
    const upstreamAtOutage = upstreamRequests('chat');
    const readiness: number[] = [];
    const downMs = 2_500 * SOAK;
    while (Date.now() - downAt < downMs) {
      readiness.push(await ready());
      await sleep(100);
    }
    // The streams that held credits finished while the database was down.
    const streamed = await Promise.all(streams);
    expect(streamed.map((s) => s.outcome.complete)).toEqual([true, true, true, true]);
    expect(upstreamRequests('chat'), 'no inference without a hold').toBe(upstreamAtOutage);
    expect(readiness.every((s) => s === 503)).toBe(true);
    const readyBody = (await (await fetch(`${url}/readyz`)).json()) as { status: string };
    expect(readyBody.status).toBe('not_ready');

    const restartAt = Date.now();
    const upAt = await restartPostgres();
    let recoveryMs = -1;
    for (;;) {
      const { outcome } = await send(orgs[0]!, 'chat');
      if (outcome.complete) {
        recoveryMs = Date.now() - upAt;
        break;
      }
      if (Date.now() - upAt > 15_000) throw new Error(`not serving 15 s after the database returned: ${JSON.stringify(outcome)}`);
      await sleep(20);
    }
    expect(recoveryMs, 'serves again within 5 s of the database returning').toBeLessThanOrEqual(5_000);
    expect(await ready()).toBe(200);
    await sleep(300);
    loading = false;
    await Promise.all(load);

    const settledMs = await waitNoOpenHolds(pg.ownerUrl, 15_000);
    const { discrepancyMicros } = await auditBooks(pg.ownerUrl, orgs.map((o) => o.orgId));
    await ledgerCheckCli({ DATABASE_URL: pg.ownerUrl, NEMO_DB_APP_PASSWORD: APP_PASSWORD });

    // While it was down: every new request a fast, well-formed 503 that exposes nothing, and no hold.
    const duringOutage = sent.filter((s) => s.model === 'chat' && s.sentAt >= downAt + 300 && s.answeredAt < restartAt);
    expect(duringOutage.length).toBeGreaterThan(0);
    let slowestRefusalMs = 0;
    for (const { outcome } of duringOutage) {
      expect(outcome.status, JSON.stringify(outcome)).toBe(503);
      const body = JSON.parse(outcome.errorBody!) as { error: Record<string, unknown> };
      expect(body.error).toMatchObject({ code: 'database_unavailable', nemo_code: 'NR_DATABASE_UNAVAILABLE', type: 'api_error', param: null });
      expect(typeof body.error.message).toBe('string');
      expect(outcome.errorBody).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres|terminat/i);
      slowestRefusalMs = Math.max(slowestRefusalMs, outcome.ms);
    }
    // Fail closed "fast": well inside the connect timeout, never hanging on the dead server.
    expect(slowestRefusalMs).toBeLessThan(5_000);
    const crossTenant = await checkRequests(duringOutage.map((s) => s.outcome.requestId));
    // The streams: charged once each (the audit checks once), at their exact cost.
    for (const s of streamed) expectCharged((await chargesByRequest(pg.ownerUrl, s.org.orgId)).get(s.outcome.requestId), cost('stream'), s.outcome.requestId);
    recordChaos({
      scenario: 'PostgreSQL outage under load',
      load: `4 chat clients (10 ms apart) x2 orgs + 4 streams holding credits`,
      faults: `PostgreSQL stopped ${downMs} ms (fast shutdown), started again on the same port`,
      requests: sent.length,
      lostOrDuplicatedMicros: discrepancyMicros,
      crossTenantReads: crossTenant,
      recoveryMs,
      notes: `${duringOutage.length} refused 503 while down (slowest ${Math.round(slowestRefusalMs)} ms), 0 upstream calls without a hold, 4/4 streams finished and settled once; last hold closed ${settledMs} ms after recovery`,
    });
  }, 60_000 * SOAK);

  it('a restart between the reserve and the settle charges each running request exactly once', async () => {
    const before = sent.length;
    // One stream that ends while the database is down, one that ends after it is back, and a
    // complete answer that arrives after it is back: all three hold credits before it goes.
    const ending = send(orgs[0]!, 'stream');
    const outliving = send(orgs[1]!, 'long-stream');
    const slowAnswer = send(orgs[0]!, 'slow-chat');
    while (upstreamInFlight('stream') < 1 || upstreamInFlight('long-stream') < 1 || upstreamInFlight('slow-chat') < 1) await sleep(5);
    await pg.stop();
    const downAt = Date.now();
    expect((await ending).outcome.complete).toBe(true);
    const upAt = await restartPostgres();
    // The settle that met the outage commits on the writer's next retry (backoff at most 5 s).
    const endingId = (await ending).outcome.requestId;
    while ((await chargesByRequest(pg.ownerUrl, orgs[0]!.orgId)).get(endingId)?.charges !== 1) {
      if (Date.now() - upAt > 15_000) throw new Error('the settle that met the outage never committed');
      await sleep(20);
    }
    const settleRetriedMs = Date.now() - upAt;
    const results = [await ending, await outliving, await slowAnswer];
    expect(results.map((r) => r.outcome.complete)).toEqual([true, true, true]);
    const settledMs = await waitNoOpenHolds(pg.ownerUrl, 15_000);
    const { discrepancyMicros } = await auditBooks(pg.ownerUrl, orgs.map((o) => o.orgId));
    for (const s of results) expectCharged((await chargesByRequest(pg.ownerUrl, s.org.orgId)).get(s.outcome.requestId), cost(s.model), s.model);
    // And it serves new requests again.
    expect((await send(orgs[1]!, 'chat')).outcome.complete).toBe(true);
    recordChaos({
      scenario: 'PostgreSQL restart between reserve and settle',
      load: '1 stream ending in the outage, 1 stream and 1 slow answer ending after it',
      faults: `PostgreSQL down ${upAt - downAt} ms between the holds and their settles`,
      requests: sent.length - before,
      lostOrDuplicatedMicros: discrepancyMicros,
      crossTenantReads: 0,
      recoveryMs: settleRetriedMs,
      notes: `recovery = database back to the retried settle committed; the other two settled on their first try after the return (all closed ${settledMs} ms after they ended); each settled once at its exact cost`,
    });
  }, 60_000 * SOAK);

  // The sweeper cannot tell a hold whose owner could not renew it (the database was away) from a
  // crashed instance's: an outage longer than reservationTtlMs must not let it release holds that are
  // still live, or whose settles are waiting to be retried, on this instance or another. In lease
  // mode the same for the credit leases the streams carved their bounds from (lease.ttlMs 1 s, the
  // least there is): their charges all land after the outage, against leases no sweeper expired.
  // Among them a lease closed in process (retired, its last request ended in the outage) whose
  // charge and return wait for the writer's retry: it must stay renewed until they commit, else a
  // sweeper expires it once the database is back and the charge arriving after finds it closed.
  it('an outage longer than the hold TTL drops no settle and expires no live hold', async () => {
    const short = { ledger: { reservationTtlMs: 1_500, sweepIntervalMs: 200, lease: { ttlMs: 1_000 } } };
    const instances: Gateway[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const config = buildConfig(
          withTestLedger({ server: { host: '127.0.0.1', port: 0, shutdownGraceMs: 500 }, ...short, models: MODELS }),
          { DATABASE_URL: pg.ownerUrl, NEMO_DB_APP_PASSWORD: APP_PASSWORD, ...HTTP_SERVER_ENV },
          'test',
        );
        instances.push(await startGateway(config));
      }
      const urls = instances.map((g) => `http://127.0.0.1:${g.port}`);
      const before = sent.length;
      let streaming = 0;
      const on = async (i: number, model: string) => {
        const org = orgs[i]!;
        const onHeaders = (status: number) => (streaming += status === 200 ? 1 : 0);
        const outcome = await chat({ url: urls[i]!, authorization: org.authorization, requestId: `${org.tag}-${++seq}`, model, content: PROMPT, stream: true, maxTokens: 64, onHeaders });
        const entry = { org, model, outcome, sentAt: 0, answeredAt: 0 };
        sent.push(entry);
        return entry;
      };
      // Ending in the outage on each instance (their settles wait for a retry), and one outliving it.
      const running = [on(0, 'stream'), on(1, 'stream'), on(0, 'long-stream')];
      // All three hold credits (a hold each, or their bounds carved from a lease) and are streaming
      // before the database goes. (Not read from the mock dispatchers: the instances' deployments
      // share ids, so one dispatcher is swapped for another's.)
      while (streaming < 3) await sleep(10);
      const owner = new PgClient(pg.ownerUrl);
      await owner.connect();
      let open: number;
      try {
        open = (await owner.query<{ n: number }>("SELECT count(*)::int AS n FROM nemo.reservations WHERE state = 'reserved'")).rows[0]!.n;
      } finally {
        await owner.end();
      }
      // Three holds; or in lease mode a lease per instance (and org), the long stream sharing one.
      expect(open).toBeGreaterThanOrEqual(LEDGER_MODE === 'hold' ? 3 : 2);
      await sleep(100);
      await pg.stop();
      const downAt = Date.now();
      await sleep(3_000 * SOAK); // two TTLs and more
      const upAt = await restartPostgres();
      const results = await Promise.all(running);
      expect(results.map((r) => r.outcome.complete)).toEqual([true, true, true]);
      await waitNoOpenHolds(pg.ownerUrl, 15_000);
      // No sweeper expired anything (in this whole file): not a live hold, not a settling one, not a
      // lease its live instance still ran on or was writing charges against.
      const after = new PgClient(pg.ownerUrl);
      await after.connect();
      try {
        const expired = (await after.query("SELECT kind, request_id, amount, charged FROM nemo.reservations WHERE state = 'expired'")).rows;
        expect(expired, 'expired by a sweeper while their instances lived').toEqual([]);
      } finally {
        await after.end();
      }
      const { discrepancyMicros } = await auditBooks(pg.ownerUrl, orgs.map((o) => o.orgId));
      for (const s of results) expectCharged((await chargesByRequest(pg.ownerUrl, s.org.orgId)).get(s.outcome.requestId), cost(s.model), `${s.model} ${s.outcome.requestId}`);
      recordChaos({
        scenario: 'PostgreSQL outage longer than the hold TTL',
        load: `2 instances (${LEDGER_MODE} mode; hold TTL 1.5 s, lease TTL 1 s, sweep 200 ms): 2 streams ending in the outage, 1 outliving it`,
        faults: `PostgreSQL down ${upAt - downAt} ms (> 2 TTL)`,
        requests: sent.length - before,
        lostOrDuplicatedMicros: discrepancyMicros,
        crossTenantReads: 0,
        recoveryMs: null,
        notes: 'no live or settling hold expired by a sweeper; each charged once at its exact cost',
      });
    } finally {
      await Promise.allSettled(instances.map((g) => g.close(100)));
    }
  }, 60_000 * SOAK);

  /** No hold or charge for any refused request, and no hold or charge of one org carries another's request. Returns the cross-tenant count. */
  async function checkRequests(refused: string[]): Promise<number> {
    let crossTenant = 0;
    const refusedSet = new Set(refused);
    for (const org of orgs) {
      for (const [requestId] of await chargesByRequest(pg.ownerUrl, org.orgId)) {
        expect(refusedSet.has(requestId), `a refused request holds credits: ${requestId}`).toBe(false);
        if (!requestId.startsWith(`${org.tag}-`)) crossTenant++;
      }
    }
    expect(crossTenant).toBe(0);
    return crossTenant;
  }
});
