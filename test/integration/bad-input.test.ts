// Bad requests against a real gateway: every one gets the documented status and an OpenAI-shaped
// error body with the right nemo_code, and the gateway keeps serving (also on the same connection).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const MAX_BODY_BYTES = 64 * 1024;
const MODEL_MAX_OUTPUT_TOKENS = 1000;
const CHAT = '/v1/chat/completions';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** docs/api.md's error table, restated here so the test does not trust the catalog it checks. */
const DOCUMENTED: Record<string, { status: number; code: string }> = {
  NR_INVALID_JSON: { status: 400, code: 'invalid_json' },
  NR_INVALID_UTF8: { status: 400, code: 'invalid_encoding' },
  NR_INVALID_REQUEST: { status: 400, code: 'invalid_request' },
  NR_MODEL_NOT_FOUND: { status: 404, code: 'model_not_found' },
  NR_ROUTE_NOT_FOUND: { status: 404, code: 'unknown_url' },
  NR_METHOD_NOT_ALLOWED: { status: 405, code: 'method_not_allowed' },
  NR_BODY_TOO_LARGE: { status: 413, code: 'request_too_large' },
  NR_UNSUPPORTED_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type' },
};

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface BadCase {
  name: string;
  /** Sends the request; most cases go through undici, a few need a raw socket. */
  send(): Promise<Answer>;
  status: number;
  nemoCode: string;
  /** Checked when given (null included); omitted means "not asserted". */
  param?: string | null;
  allow?: string;
}

let gw: TestGateway;
let port: number;

const message = (content: unknown = 'Hello') => [{ role: 'user', content }];
const valid = (extra: Record<string, unknown> = {}) => ({ model: 'm', messages: message(), ...extra });
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

async function send(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, { method: method as 'POST', headers: { ...gw.auth, ...headers }, body });
  const text = await res.body.text();
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
  return { status: res.statusCode, headers: flat, body: text };
}

const postJson = (body: string | Buffer, headers: Record<string, string> = {}) => send('POST', CHAT, body, { 'content-type': 'application/json', ...headers });
const postObject = (body: unknown) => postJson(JSON.stringify(body));

/**
 * One request over a fresh raw socket, for what undici will not send (no Content-Length,
 * a Content-Length that lies, no Content-Type). `afterHead` writes the rest of the request.
 */
function rawRequest(head: string, afterHead?: (socket: net.Socket) => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const timer = setTimeout(() => finish(new Error('raw request: no complete response within 5 s')), 5000);
    function finish(err?: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const answer = parseResponse(Buffer.concat(chunks));
      if (answer) resolve(answer);
      else reject(err ?? new Error(`raw request: incomplete response ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
    }
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (parseResponse(Buffer.concat(chunks))) finish();
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish());
    // Authenticated like every other case: the line goes right after the request line.
    const lineEnd = head.indexOf('\r\n') + 2;
    socket.write(`${head.slice(0, lineEnd)}authorization: ${gw.auth.authorization}\r\n${head.slice(lineEnd)}`);
    afterHead?.(socket);
  });
}

/** A complete HTTP/1.1 response with a Content-Length body, or undefined while incomplete. */
function parseResponse(bytes: Buffer): Answer | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  if (bytes.length < end + 4 + length) return undefined;
  return { status: Number(statusLine!.split(' ')[1]), headers, body: bytes.subarray(end + 4, end + 4 + length).toString('utf8') };
}

function expectError(answer: Answer, c: Pick<BadCase, 'status' | 'nemoCode' | 'param' | 'allow'>): void {
  const context = `${answer.status} ${answer.body}`;
  expect(answer.status, context).toBe(c.status);
  expect(answer.headers['content-type'], context).toBe('application/json');
  expect(answer.headers['x-request-id'], context).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  const parsed = JSON.parse(answer.body) as { error: Record<string, unknown> };
  expect(Object.keys(parsed)).toEqual(['error']);
  const error = parsed.error;
  expect(typeof error.message, context).toBe('string');
  expect((error.message as string).length).toBeGreaterThan(0);
  expect(error.type, context).toBe('invalid_request_error');
  expect(error.param === null || typeof error.param === 'string', context).toBe(true);
  expect(error.nemo_code, context).toBe(c.nemoCode);
  expect(error.code, context).toBe(DOCUMENTED[c.nemoCode]!.code);
  expect(DOCUMENTED[c.nemoCode]!.status).toBe(c.status);
  if (c.param !== undefined) expect(error.param, context).toBe(c.param);
  if (c.allow !== undefined) expect(answer.headers.allow, context).toBe(c.allow);
}

async function expectServes(): Promise<void> {
  const answer = await postObject(valid());
  expect(answer.status, answer.body).toBe(200);
  const body = JSON.parse(answer.body) as { object: string; choices: Array<{ message: { content: string } }> };
  expect(body.object).toBe('chat.completion');
  expect(body.choices[0]!.message.content.length).toBeGreaterThan(0);
}

const invalid = (name: string, body: unknown, param: string | null, status = 400, nemoCode = 'NR_INVALID_REQUEST'): BadCase => ({
  name,
  send: () => postObject(body),
  status,
  nemoCode,
  param,
});

const invalidJson = (name: string, text: string): BadCase => ({ name, send: () => postJson(text), status: 400, nemoCode: 'NR_INVALID_JSON', param: null });

const CASES: BadCase[] = [
  // Not JSON at all.
  invalidJson('truncated JSON', '{"model":"m","messages":[{"role":"user","con'),
  invalidJson('trailing comma', '{"model":"m","messages":[{"role":"user","content":"hi"}],}'),
  invalidJson('single quotes', "{'model':'m','messages':[{'role':'user','content':'hi'}]}"),
  invalidJson('empty body', ''),
  invalidJson('garbage after the object', '{"model":"m","messages":[{"role":"user","content":"hi"}]} x'),
  // JSON, but not an object.
  invalid('the JSON literal null', null, null),
  invalid('a bare JSON string', 'hello', null),
  invalid('a JSON array', [valid()], null),
  // Wrong types and missing fields.
  invalid('model is a number', { model: 42, messages: message() }, 'model'),
  invalid('model is an empty string', { model: '', messages: message() }, 'model'),
  invalid('model is missing', { messages: message() }, 'model'),
  invalid('messages is a string', { model: 'm', messages: 'Hello' }, 'messages'),
  invalid('messages is missing', { model: 'm' }, 'messages'),
  invalid('messages is empty', { model: 'm', messages: [] }, 'messages'),
  invalid('a message is a string', { model: 'm', messages: ['Hello'] }, 'messages[0]'),
  invalid('a message without role', { model: 'm', messages: [{ content: 'Hello' }] }, 'messages[0].role'),
  invalid('a message with an unknown role', { model: 'm', messages: [{ role: 'wizard', content: 'Hello' }] }, 'messages[0].role'),
  invalid('a user message without content', { model: 'm', messages: [{ role: 'user' }] }, 'messages[0].content'),
  invalid('a tool message without tool_call_id', { model: 'm', messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'),
  invalid('stream is a string', valid({ stream: 'yes' }), 'stream'),
  invalid('stream_options without stream', valid({ stream_options: { include_usage: true } }), 'stream_options'),
  invalid('temperature is a string', valid({ temperature: 'hot' }), 'temperature'),
  invalid('temperature above 2', valid({ temperature: 2.5 }), 'temperature'),
  invalid('user is a number', valid({ user: 7 }), 'user'),
  // Output bounds.
  invalid('max_tokens is a string', valid({ max_tokens: '10' }), 'max_tokens'),
  invalid('max_tokens is negative', valid({ max_tokens: -1 }), 'max_tokens'),
  invalid('max_tokens is zero', valid({ max_tokens: 0 }), 'max_tokens'),
  invalid('max_tokens is fractional', valid({ max_tokens: 1.5 }), 'max_tokens'),
  invalid('max_tokens is 2**53', valid({ max_tokens: 2 ** 53 }), 'max_tokens'),
  invalid('max_tokens above the model maximum', valid({ max_tokens: MODEL_MAX_OUTPUT_TOKENS + 1 }), 'max_tokens'),
  invalid('max_completion_tokens above the model maximum', valid({ max_completion_tokens: 100_000 }), 'max_completion_tokens'),
  // Content parts.
  invalid('an input_audio content part', valid({ messages: message([{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }]) }), 'messages[0].content[0].type'),
  invalid('a file content part', valid({ messages: message([{ type: 'text', text: 'see file' }, { type: 'file', file: { file_id: 'f1' } }]) }), 'messages[0].content[1].type'),
  invalid('an unknown content part type', valid({ messages: message([{ type: 'hologram' }]) }), 'messages[0].content[0].type'),
  invalid('an image_url part without url', valid({ messages: message([{ type: 'image_url', image_url: { detail: 'low' } }]) }), 'messages[0].content[0].image_url'),
  invalid('an image_url part with an empty url', valid({ messages: message([{ type: 'image_url', image_url: { url: '' } }]) }), 'messages[0].content[0].image_url'),
  invalid('a text part without text', valid({ messages: message([{ type: 'text' }]) }), 'messages[0].content[0].text'),
  // Unsupported options.
  invalid('n = 2', valid({ n: 2 }), 'n'),
  invalid('stop with 5 entries', valid({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop'),
  invalid('tools is a string', valid({ tools: 'search' }), 'tools'),
  invalid('a tool without a function name', valid({ tools: [{ type: 'function', function: {} }] }), 'tools[0]'),
  invalid('a tool name with spaces', valid({ tools: [{ type: 'function', function: { name: 'web search' } }] }), 'tools[0]'),
  invalid('tool parameters that are not an object', valid({ tools: [{ type: 'function', function: { name: 'f', parameters: 'x' } }] }), 'tools[0].function.parameters'),
  // Keys a case-blind upstream parser would read instead of the checked ones.
  invalid('a message with content and Content', valid({ messages: [{ role: 'user', content: 'hi', Content: 'unchecked' }] }), 'messages[0]'),
  invalid('max_tokens and MAX_TOKENS', valid({ max_tokens: 8, MAX_TOKENS: 100000 }), null),
  // Model lookup.
  invalid('an unknown model', { model: 'no-such-model', messages: message() }, 'model', 404, 'NR_MODEL_NOT_FOUND'),
  // Encoding.
  {
    name: 'invalid UTF-8 bytes inside a JSON string',
    send: () => postJson(Buffer.concat([Buffer.from('{"model":"m","messages":[{"role":"user","content":"a'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('b"}]}')])),
    status: 400,
    nemoCode: 'NR_INVALID_UTF8',
    param: null,
  },
  // Content-Type.
  { name: 'Content-Type text/plain', send: () => send('POST', CHAT, JSON.stringify(valid()), { 'content-type': 'text/plain' }), status: 415, nemoCode: 'NR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'Content-Type application/jsonx', send: () => send('POST', CHAT, JSON.stringify(valid()), { 'content-type': 'application/jsonx' }), status: 415, nemoCode: 'NR_UNSUPPORTED_MEDIA_TYPE' },
  {
    name: 'no Content-Type at all',
    send: () => {
      const body = JSON.stringify(valid());
      return rawRequest(`POST ${CHAT} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    },
    status: 415,
    nemoCode: 'NR_UNSUPPORTED_MEDIA_TYPE',
  },
  // Size limits.
  {
    name: 'a body over the limit with Content-Length',
    send: () => postJson(JSON.stringify(valid({ messages: message('x'.repeat(MAX_BODY_BYTES)) }))),
    status: 413,
    nemoCode: 'NR_BODY_TOO_LARGE',
  },
  {
    name: 'a chunked body over the limit without Content-Length',
    send: () =>
      rawRequest(`POST ${CHAT} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`, (socket) => {
        const chunk = Buffer.alloc(16 * 1024, 0x20);
        // 5 x 16 KiB > 64 KiB, and no terminating chunk: the gateway must not wait for the end.
        for (let i = 0; i < 5; i++) socket.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
      }),
    status: 413,
    nemoCode: 'NR_BODY_TOO_LARGE',
  },
  {
    name: 'a Content-Length over the limit with a tiny body',
    send: () => rawRequest(`POST ${CHAT} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY_BYTES * 10}\r\n\r\n{}`),
    status: 413,
    nemoCode: 'NR_BODY_TOO_LARGE',
  },
  // Deep nesting: parses, must be refused with 400 rather than take the server down.
  {
    name: '10,000 nested arrays as message content',
    send: () => postJson(`{"model":"m","messages":[{"role":"user","content":${nested(10_000)}}]}`),
    status: 400,
    nemoCode: 'NR_INVALID_REQUEST',
    param: 'messages[0].content[0]',
  },
  {
    name: '10,000 nested arrays in a pass-through field',
    send: () => postJson(`{"model":"m","messages":[{"role":"user","content":"Hello"}],"metadata":${nested(10_000)}}`),
    status: 400,
    nemoCode: 'NR_INVALID_REQUEST',
  },
  // Routing.
  { name: 'GET on /v1/chat/completions', send: () => send('GET', CHAT), status: 405, nemoCode: 'NR_METHOD_NOT_ALLOWED', allow: 'POST' },
  { name: 'PUT on /v1/models', send: () => send('PUT', '/v1/models', '{}', { 'content-type': 'application/json' }), status: 405, nemoCode: 'NR_METHOD_NOT_ALLOWED', allow: 'GET' },
  { name: 'DELETE on /healthz', send: () => send('DELETE', '/healthz'), status: 405, nemoCode: 'NR_METHOD_NOT_ALLOWED', allow: 'GET' },
  { name: 'an unknown path', send: () => send('GET', '/v1/no-such-endpoint'), status: 404, nemoCode: 'NR_ROUTE_NOT_FOUND', param: null },
  {
    name: 'a legacy completion with several prompts',
    send: () => send('POST', '/v1/completions', JSON.stringify({ model: 'm', prompt: ['Hi', 'there'] }), { 'content-type': 'application/json' }),
    status: 400,
    nemoCode: 'NR_INVALID_REQUEST',
    param: 'prompt',
  },
  {
    name: 'GET on the messages route',
    send: () => send('GET', '/v1/messages'),
    status: 405,
    nemoCode: 'NR_METHOD_NOT_ALLOWED',
  },
];

beforeAll(async () => {
  gw = await startTestGateway({
    server: { maxBodyBytes: MAX_BODY_BYTES },
    models: [
      {
        name: 'm',
        deployments: [
          { provider: 'mock', model: 'm', maxOutputTokens: MODEL_MAX_OUTPUT_TOKENS, mock: { ttftMs: 0, tokensPerSecond: 0, completionTokens: 8, reportUsage: true, fault: 'none' } },
        ],
      },
    ],
  });
  port = gw.gateway.port;
});

afterAll(async () => {
  await gw?.close();
});

describe('bad requests get a typed error and the gateway keeps serving', () => {
  it('the table is large enough to mean something', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(35);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  it('a valid request is served before any bad one', expectServes);

  CASES.forEach((c, i) => {
    it(`${c.name} -> ${c.status} ${c.nemoCode}`, async () => {
      expectError(await c.send(), c);
    });
    if ((i + 1) % 5 === 0) it(`a valid request is still served after case ${i + 1}`, expectServes);
  });

  it('a valid request is still served after the whole table', expectServes);

  it('a valid streamed request is still served after the whole table', async () => {
    const answer = await postObject(valid({ stream: true }));
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/event-stream');
    expect(answer.body.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('Content-Type application/json with a charset parameter is accepted', async () => {
    const answer = await postJson(JSON.stringify(valid()), { 'content-type': 'application/json; charset=utf-8' });
    expect(answer.status, answer.body).toBe(200);
  });
});

describe('keep-alive after an error', () => {
  it('a 400 that keeps the connection open leaves it usable for a valid request', async () => {
    const client = new Client(gw.url, { pipelining: 1 });
    let connects = 0;
    client.on('connect', () => connects++);
    try {
      const bad = await client.request({ method: 'POST', path: CHAT, headers: { ...gw.auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm' }) });
      const badBody = (await bad.body.json()) as { error: { nemo_code: string; param: string } };
      expect(bad.statusCode).toBe(400);
      expect(badBody.error).toMatchObject({ nemo_code: 'NR_INVALID_REQUEST', param: 'messages' });
      expect(bad.headers.connection).not.toBe('close');

      const notFound = await client.request({ method: 'POST', path: CHAT, headers: { ...gw.auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nope', messages: message() }) });
      expect(notFound.statusCode).toBe(404);
      await notFound.body.dump();

      const good = await client.request({ method: 'POST', path: CHAT, headers: { ...gw.auth, 'content-type': 'application/json' }, body: JSON.stringify(valid()) });
      expect(good.statusCode).toBe(200);
      expect(((await good.body.json()) as { object: string }).object).toBe('chat.completion');
      expect(connects).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('after an error that closes the connection (415), the client reconnects and is served', async () => {
    const client = new Client(gw.url, { pipelining: 1 });
    let connects = 0;
    client.on('connect', () => connects++);
    try {
      const bad = await client.request({ method: 'POST', path: CHAT, headers: { ...gw.auth, 'content-type': 'text/plain' }, body: 'hi' });
      expect(bad.statusCode).toBe(415);
      const closed = bad.headers.connection === 'close';
      await bad.body.dump();
      const good = await client.request({ method: 'POST', path: CHAT, headers: { ...gw.auth, 'content-type': 'application/json' }, body: JSON.stringify(valid()) });
      expect(good.statusCode).toBe(200);
      await good.body.dump();
      // The body was never read, so the gateway may close; then exactly one reconnect.
      expect(connects).toBe(closed ? 2 : 1);
    } finally {
      await client.close();
    }
  });
});

describe('x-request-id', () => {
  it("echoes the client's id on success and on errors", async () => {
    const ok = await postJson(JSON.stringify(valid()), { 'x-request-id': 'client-req_1.2:3' });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-request-id']).toBe('client-req_1.2:3');
    const bad = await postJson('{', { 'x-request-id': 'bad-one-42' });
    expect(bad.status).toBe(400);
    expect(bad.headers['x-request-id']).toBe('bad-one-42');
  });

  it('accepts a 128-character id', async () => {
    const id = 'a'.repeat(128);
    const answer = await postJson(JSON.stringify(valid()), { 'x-request-id': id });
    expect(answer.headers['x-request-id']).toBe(id);
  });

  it.each([
    ['with spaces', 'my request id'],
    ['300 characters long', 'r'.repeat(300)],
    ['with a quote and a slash', 'a"b/c'],
  ])('replaces an unsafe id (%s) with a fresh UUID', async (_label, unsafe) => {
    const first = await postJson(JSON.stringify(valid()), { 'x-request-id': unsafe });
    const second = await postJson('{', { 'x-request-id': unsafe });
    expect(first.status).toBe(200);
    expect(second.status).toBe(400);
    expect(first.headers['x-request-id']).toMatch(UUID);
    expect(second.headers['x-request-id']).toMatch(UUID);
    expect(first.headers['x-request-id']).not.toBe(second.headers['x-request-id']);
  });

  it('gives every request without an id its own UUID', async () => {
    const a = await postJson(JSON.stringify(valid()));
    const b = await postJson(JSON.stringify(valid()));
    expect(a.headers['x-request-id']).toMatch(UUID);
    expect(b.headers['x-request-id']).toMatch(UUID);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});
