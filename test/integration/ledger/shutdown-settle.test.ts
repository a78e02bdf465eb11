// A stream cut at the shutdown deadline is charged for what it produced: its charge is counted
// (exactly, in the worker pool or inline) after the exchange finished, and close() waits for that
// count before the ledger drains, so the settle is never stranded behind an ended pool.
import { Client } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { Books, LEDGER_MODE } from './money-helpers.js';

const started: TestGateway[] = [];

afterAll(async () => {
  for (const test of started) await test.close().catch(() => undefined);
});

describe('a stream cut at the shutdown deadline', () => {
  // 20 tokens/s: a small text, counted inline; 400 tokens/s: large enough for the pool.
  it.each([20, 400])('is settled for the text it produced (%i tokens/s)', async (tokensPerSecond) => {
    const test = await startTestGateway({
      server: { shutdownGraceMs: 5000 },
      models: [
        {
          name: 'slow',
          deployments: [{ provider: 'mock', model: 'slow', encoding: 'o200k_base', inputPricePerMTok: 1000, outputPricePerMTok: 1000, mock: { ttftMs: 0, tokensPerSecond, completionTokens: 4000, reportUsage: true, fault: 'none' } }],
        },
      ],
    });
    started.push(test);
    const client = new Client(test.url);
    const res = await client.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { ...test.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(res.statusCode).toBe(200);
    let streamed = '';
    const done = (async () => {
      for await (const chunk of res.body) streamed += chunk.toString();
    })();
    await new Promise((r) => setTimeout(r, 1000));
    // The deadline cuts the stream: no usage ever arrives, so the charge must be counted.
    await test.gateway.close(100);
    await done.catch(() => undefined);
    await client.destroy();

    const books = new Books(test.database);
    try {
      // One charge, for some of the text and not all of it; nothing held or open after the close
      // (in lease mode the lease went back after the charge, in the same drain).
      const [charge, ...more] = await books.expectSettledBooks(test.orgId, { served: 1 });
      expect(more).toEqual([]);
      expect(charge!.charged).toBeGreaterThan(0);
      // The whole answer (4000 tokens at 1000 per MTok) was never produced.
      expect(charge!.charged).toBeLessThan(4000 * 1000);
      const { rows } = await books.pool.query<{ state: string; amount: number; charged: number }>("SELECT state, amount::float8 AS amount, charged::float8 AS charged FROM nemo.reservations WHERE kind = 'request'");
      if (LEDGER_MODE === 'hold') {
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ state: 'settled', charged: charge!.charged });
        expect(rows[0]!.charged).toBeLessThan(rows[0]!.amount);
      }
      expect(streamed).toContain('shutting_down');
    } finally {
      await books.close();
    }
  });
});
