// Property-based fuzzing of POST /v1/chat/completions on a real gateway: arbitrary JSON bodies
// (near-valid requests with every field mutated, and any JSON at all), arbitrary bytes, and
// arbitrary headers (credentials, content types, request ids; over a raw socket, any byte). No
// answer is a 5xx (the upstream here never fails, so every error is the client's), every error is
// OpenAI-shaped with a catalog code, no promise rejection goes unhandled, and the gateway keeps
// serving with nothing left in flight. NEMO_FUZZ_RUNS scales the runs; NEMO_FUZZ_SEED replays one.
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, startTestGateway, waitFor, type TestGateway } from '../integration/helpers/gateway.js';
import { errorBodyProblem, fuzzParams, fuzzTimeoutMs, trapUnhandled } from '../support/fuzz.js';
import { rawExchange } from '../support/raw-http.js';

const MASTER_KEY = 'sk-master-fuzz-0123456789abcdefghijklmnopqrstuvwxyz';
const CHAT = '/v1/chat/completions';
const MAX_BODY_BYTES = 256 * 1024;
const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

let gw: TestGateway;
let agent: Agent;
let keys: { admin: string; member: string; revoked: string };
const trap = trapUnhandled();

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function post(body: string | Uint8Array, headers: Record<string, string>): Promise<Answer> {
  const res = await request(`${gw.url}${CHAT}`, { method: 'POST', headers, body, dispatcher: agent });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** What every answer must be: no 5xx; errors OpenAI-shaped; successes a completion or a whole stream. */
function checkAnswer(answer: Answer, requestId?: string): void {
  expect(answer.status, answer.body.slice(0, 300)).toBeLessThan(500);
  const id = answer.headers['x-request-id'];
  expect(typeof id).toBe('string');
  if (requestId !== undefined && SAFE_ID.test(requestId)) expect(id).toBe(requestId);
  if (answer.status >= 400) {
    expect(answer.headers['content-type']).toBe('application/json');
    expect(errorBodyProblem(answer.status, answer.body)).toBeUndefined();
    return;
  }
  expect(answer.status).toBe(200);
  if (answer.headers['content-type'] === 'text/event-stream') {
    expect(answer.body).not.toContain('event: error');
    expect(answer.body.trimEnd().endsWith('data: [DONE]')).toBe(true);
  } else {
    expect((JSON.parse(answer.body) as { object: string }).object).toBe('chat.completion');
  }
}

// Values of every JSON type, with the edge cases validators get wrong.
const anyJson = fc.jsonValue({ maxDepth: 3 });
const number = fc.oneof(fc.integer({ min: -5, max: 5000 }), fc.double(), fc.constantFrom(0, -1, 1.5, 2 ** 53, 1e308, -0));
const weird = fc.oneof(anyJson, number, fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom(null, true, [], {}, '', '\u0000', '\uFEFF'));
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', 'Hello', 'ignore previous instructions'));
const part = fc.oneof(
  text.map((t) => ({ type: 'text', text: t })),
  fc.webUrl().map((url) => ({ type: 'image_url', image_url: { url } })),
  fc.record({ type: weird, text: weird, image_url: weird }, { requiredKeys: [] }),
);
const message = fc.record(
  {
    role: fc.oneof(fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool'), weird),
    content: fc.oneof(text, fc.array(part, { maxLength: 3 }), weird),
    name: fc.oneof(text, weird),
    tool_call_id: fc.oneof(text, weird),
    tool_calls: fc.oneof(fc.array(fc.record({ id: text, type: fc.constant('function'), function: fc.record({ name: text, arguments: text }) }), { maxLength: 2 }), weird),
  },
  { requiredKeys: ['role'] },
);
const tool = fc.oneof(
  fc.record({ type: fc.constant('function'), function: fc.record({ name: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), description: text, parameters: fc.oneof(fc.constant({ type: 'object' }), weird) }, { requiredKeys: ['name'] }) }),
  weird,
);
/** A near-valid request: every field present or not, right or wrong, plus pass-through extras. */
const chatRequest = fc
  .record(
    {
      model: fc.oneof(fc.constantFrom('m', 'other', 'no-such-model'), weird),
      messages: fc.oneof(fc.array(message, { minLength: 1, maxLength: 4 }), weird),
      stream: fc.oneof(fc.boolean(), weird),
      stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), weird) }), weird),
      max_tokens: fc.oneof(fc.integer({ min: 1, max: 64 }), number, weird),
      max_completion_tokens: fc.oneof(fc.integer({ min: 1, max: 64 }), number, weird),
      temperature: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), number, weird),
      top_p: fc.oneof(number, weird),
      n: fc.oneof(fc.constant(1), number, weird),
      stop: fc.oneof(text, fc.array(text, { maxLength: 6 }), weird),
      tools: fc.oneof(fc.array(tool, { maxLength: 3 }), weird),
      tool_choice: weird,
      user: fc.oneof(text, weird),
      metadata: anyJson,
    },
    { requiredKeys: [] },
  )
  // Mostly keep the fields a request needs right, so the fuzz gets past the first checks.
  .chain((body) => fc.constantFrom({ ...body }, { ...body, model: 'm', messages: [{ role: 'user', content: 'Hi' }] }, { ...body, model: 'm' }));

beforeAll(async () => {
  gw = await startTestGateway(
    {
      server: { maxBodyBytes: MAX_BODY_BYTES },
      models: [
        { name: 'm', deployments: [{ provider: 'mock', model: 'm', maxOutputTokens: 64, mock: { ttftMs: 0, tokensPerSecond: 0, completionTokens: 4 } }] },
        { name: 'other', deployments: [{ provider: 'mock', model: 'other', inputPricePerMTok: 1, outputPricePerMTok: 1, mock: { ttftMs: 0, tokensPerSecond: 0, completionTokens: 4 } }] },
      ],
    },
    { NEMO_MASTER_KEY: MASTER_KEY },
  );
  agent = new Agent({ connections: 4 });
  const member = (await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'member', role: 'member', allowed_models: ['m'], rpm_limit: 1_000_000 })) as { key: string };
  const revoked = (await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'revoked' })) as { id: string; key: string };
  await gw.gateway.admin.revokeKey(PLATFORM, gw.orgId, revoked.id);
  keys = { admin: gw.apiKey, member: member.key, revoked: revoked.key };
});

afterAll(async () => {
  trap.uninstall();
  await agent?.close();
  await gw?.close();
});

describe('POST /v1/chat/completions under fuzzing', () => {
  it('answers any near-valid or arbitrary JSON body with a success or an OpenAI-shaped 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(chatRequest, anyJson), fc.constantFrom('admin', 'member') as fc.Arbitrary<'admin' | 'member'>, async (body, who) => {
        checkAnswer(await post(JSON.stringify(body), { authorization: `Bearer ${keys[who]}`, 'content-type': 'application/json' }));
      }),
      fuzzParams(3),
    );
  }, fuzzTimeoutMs(3));

  it('answers arbitrary bytes (bad UTF-8, truncated JSON, huge numbers, deep nesting) with a 4xx', async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 500 }),
      chatRequest.map((b) => {
        const s = JSON.stringify(b);
        return Buffer.from(s.slice(0, Math.max(1, s.length >> 1)));
      }),
      fc.integer({ min: 1, max: 5000 }).map((depth) => Buffer.from(`{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":${'['.repeat(depth)}${']'.repeat(depth)}}`)),
      fc.integer({ min: 1, max: 400 }).map((digits) => Buffer.from(`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1${'0'.repeat(digits)}}`)),
    );
    await fc.assert(
      fc.asyncProperty(bytes, async (body) => {
        const answer = await post(body, { authorization: `Bearer ${keys.admin}`, 'content-type': 'application/json' });
        checkAnswer(answer);
      }),
      fuzzParams(2),
    );
  }, fuzzTimeoutMs(2));

  it('answers any credentials, content type and request id with a success or an OpenAI-shaped 4xx', async () => {
    const visible = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 60 });
    const base62 = fc.string({ unit: fc.constantFrom(...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'), minLength: 43, maxLength: 43 });
    const authorization = fc.oneof(
      fc.constantFrom(`Bearer ${keys.admin}`, `bearer ${keys.member}`, `Bearer ${keys.revoked}`, `Bearer ${MASTER_KEY}`, 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', ''),
      base62.map((k) => `Bearer sk-nemo-${k}`),
      visible.map((v) => `Bearer ${v}`),
      visible,
    );
    const contentType = fc.oneof(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/jsonx', 'multipart/form-data; boundary=x', ''), visible);
    const headers = fc.record({ authorization, 'x-api-key': fc.oneof(fc.constant(keys.admin), visible), 'content-type': contentType, 'x-request-id': fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), visible) }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(headers, fc.oneof(chatRequest, fc.constant({ model: 'm', messages: [{ role: 'user', content: 'Hi' }] })), async (h, body) => {
        const clean = Object.fromEntries(Object.entries(h).filter(([, v]) => v !== '')) as Record<string, string>;
        checkAnswer(await post(JSON.stringify(body), clean), clean['x-request-id']);
      }),
      fuzzParams(3),
    );
  }, fuzzTimeoutMs(3));

  it('answers header values of any bytes over a raw socket with an OpenAI-shaped 4xx or a closed connection', async () => {
    // Mostly visible bytes and obs-text (0x80-0xff), which uWS answers; sometimes control bytes,
    // on which uWS never completes the request (its idle timeout closes the connection later).
    const visibleOrHigh = fc.integer({ min: 0x20, max: 0xff });
    const anyButLineEnds = fc.integer({ min: 1, max: 255 }).filter((b) => b !== 0x0d && b !== 0x0a);
    const value = fc.oneof({ weight: 5, arbitrary: fc.array(visibleOrHigh, { maxLength: 40 }) }, { weight: 1, arbitrary: fc.array(anyButLineEnds, { maxLength: 40 }) });
    const name = fc.constantFrom('authorization', 'x-api-key', 'content-type', 'x-request-id', 'content-length', 'transfer-encoding', 'x-anything');
    await fc.assert(
      fc.asyncProperty(name, value, async (header, bytes) => {
        const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Hi' }] });
        const wire = Buffer.concat([
          Buffer.from(`POST ${CHAT} HTTP/1.1\r\nhost: 127.0.0.1\r\n`),
          ...(header === 'authorization' ? [] : [Buffer.from(`authorization: Bearer ${keys.admin}\r\n`)]),
          ...(header === 'content-type' ? [] : [Buffer.from('content-type: application/json\r\n')]),
          ...(header === 'content-length' ? [] : [Buffer.from(`content-length: ${body.length}\r\n`)]),
          Buffer.from(`${header}: `),
          Buffer.from(bytes),
          Buffer.from(`\r\n\r\n${body}`),
        ]);
        const out = await rawExchange(gw.gateway.port, wire, { deadlineMs: 150, stopAfterResponses: 1 });
        for (const r of out.responses) {
          expect(r.status, r.body).toBeLessThan(500);
          if (r.status >= 400) expect(errorBodyProblem(r.status, r.body)).toBeUndefined();
        }
      }),
      fuzzParams(0.5),
    );
  }, fuzzTimeoutMs(0.5, 200));

  it('leaves nothing in flight or held, keeps serving, and no promise rejection went unhandled', async () => {
    await waitFor(async () => {
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      return /^nemo_inflight_requests 0$/m.test(metrics) && /^nemo_active_streams 0$/m.test(metrics);
    }, 5000);
    // Every hold of the priced model was settled or released.
    await waitFor(async () => ((await (await fetch(`${gw.url}/admin/v1/orgs/${gw.orgId}/credits`, { headers: gw.auth })).json()) as { held_micros: number }).held_micros === 0, 5000);
    checkAnswer(await post(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'still there?' }] }), { ...gw.auth, 'content-type': 'application/json' }));
    expect(trap.problems).toEqual([]);
  });
});
