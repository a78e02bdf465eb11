// The OpenAI chunk scan: whatever it calls SIMPLE or NO_CHOICES, JSON.parse reads the same way
// (over hand-written provider shapes, the recorded Anthropic streams as the gateway translates them,
// and random corruptions of both); and the stream output guard's in-place path sends what its
// parse-and-serialize path sends, on random texts split at random points.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../src/guardrails/policy.js';
import { StreamOutputGuard } from '../../../src/guardrails/stream-output.js';
import { AnthropicStreamTranslator } from '../../../src/providers/anthropic/stream.js';
import { COMPLEX, NO_CHOICES, OpenAiChunkScan, SIMPLE } from '../../../src/streaming/openai-chunk.js';
import { SseParser } from '../../../src/streaming/sse-parser.js';
import { seededRandom } from '../../support/seeded-random.js';

const envelope = '"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini"';
const SHAPES = [
  `{${envelope},"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
  `{${envelope},"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}`,
  `{${envelope},"choices":[{"index":0,"delta":{"content":"line\\nbreak \\"quoted\\" \\u00e9\\ud83d\\ude00 \\/ \\\\"},"finish_reason":null}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{"content":"héllo 😀 wörld"},"finish_reason":null}]}`,
  `{${envelope},"choices":[{"delta":{"content":"no index"}}]}`,
  `{${envelope},"choices":[{"index":3,"delta":{"content":"third"},"finish_reason":null}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{"content":null,"refusal":null,"reasoning_content":null,"tool_calls":null},"finish_reason":null}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
  `{${envelope},"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`,
  `{${envelope},"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\\"a\\":"}}]},"finish_reason":null}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":null}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{"reasoning_content":"think"},"finish_reason":null}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}`,
  `{${envelope},"choices":[{"index":0,"delta":{"cont\\u0065nt":"hidden"}}]}`,
  `{${envelope},"choices":[{"index":-1,"delta":{"content":"x"}}]}`,
  `{${envelope},"choices":[{"index":1.5e0,"delta":{"content":"x"}}]}`,
  `{${envelope},"choices":[{"index":0,"delta":"text"}]}`,
  `{${envelope},"choices":{"index":0}}`,
  `{${envelope}}`,
  ` { "choices" : [ { "index" : 0 , "delta" : { "content" : "spaced" } , "finish_reason" : null } ] , "x" : [1, -2.5e+3, true, false, null, {"y": [[]]}] } `,
  `{"choices":[{"index":0,"delta":{"content":"x"}}],"choices":[]}`,
  `{"error":{"message":"overloaded","type":"server_error"}}`,
  '[1,2]',
  'null',
];

/** What JSON.parse says the scan should have found, or undefined when the text is not JSON. */
function expected(text: string): { kind: number; index?: number; content?: string | null } | undefined {
  let parsed: any;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { kind: COMPLEX };
  const choices = parsed.choices;
  if (!Array.isArray(choices) || choices.length === 0) return { kind: NO_CHOICES };
  return { kind: SIMPLE, index: choices[0]?.index ?? 0, content: choices[0]?.delta?.content ?? null };
}

function checkAgainstParse(scan: OpenAiChunkScan, text: string): number {
  const kind = scan.scan(text);
  if (kind === COMPLEX) return kind;
  const want = expected(text);
  expect(want, `scan accepted text JSON.parse refuses: ${text}`).toBeDefined();
  expect(kind, text).toBe(want!.kind);
  if (kind === SIMPLE) {
    const choice = JSON.parse(text).choices[0];
    expect(choice.finish_reason ?? null, text).toBeNull();
    for (const other of ['refusal', 'reasoning_content', 'tool_calls']) expect(choice.delta[other] ?? null, text).toBeNull();
    expect(scan.index, text).toBe(want!.index);
    const content = scan.contentStart === -1 ? null : scan.contentEscaped ? JSON.parse(text.slice(scan.contentStart, scan.contentEnd)) : text.slice(scan.contentStart + 1, scan.contentEnd - 1);
    expect(content, text).toBe(want!.content);
  }
  return kind;
}

/** The OpenAI frames the gateway makes of each recorded Anthropic stream. */
function translatedFixtureFrames(): string[] {
  const dir = join(__dirname, '../../fixtures/providers/anthropic');
  const frames: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sse'))) {
    const translator = new AnthropicStreamTranslator({ requestId: 'req-1', publicModel: 'claude', created: 1, clientWantsUsage: true });
    const parser = new SseParser((event) => translator.onEvent(event, { push: (f) => void frames.push(typeof f === 'string' ? f : Buffer.from(f).toString()) }));
    try {
      parser.push(readFileSync(join(dir, file)));
    } catch {
      // error-mid-stream.sse ends in an upstream error: the frames before it count
    }
  }
  return frames.filter((f) => f.startsWith('data: {')).map((f) => f.slice(6).trimEnd());
}

describe('OpenAiChunkScan', () => {
  it('reads the common chunk shapes as JSON.parse does, and takes the plain ones', () => {
    const scan = new OpenAiChunkScan();
    const kinds = SHAPES.map((text) => checkAgainstParse(scan, text));
    expect(kinds.slice(0, 9)).toEqual([SIMPLE, SIMPLE, SIMPLE, SIMPLE, SIMPLE, SIMPLE, SIMPLE, COMPLEX, NO_CHOICES]);
    // tool calls, refusal, reasoning, two choices, duplicate or escaped keys, odd indexes, a string delta
    expect(kinds.slice(9, 18).every((k) => k === COMPLEX)).toBe(true);
    expect(kinds.slice(18, 21)).toEqual([NO_CHOICES, NO_CHOICES, SIMPLE]);
    expect(kinds.slice(21)).toEqual([COMPLEX, NO_CHOICES, COMPLEX, COMPLEX]);
  });

  it('reads the recorded provider streams, as translated, as JSON.parse does', () => {
    const scan = new OpenAiChunkScan();
    const frames = translatedFixtureFrames();
    expect(frames.length).toBeGreaterThan(10);
    const kinds = frames.map((text) => checkAgainstParse(scan, text));
    expect(kinds).toContain(SIMPLE);
  });

  it('never accepts a corrupted chunk JSON.parse refuses, nor misreads one it accepts', () => {
    const random = seededRandom(18);
    const scan = new OpenAiChunkScan();
    const corpus = [...SHAPES, ...translatedFixtureFrames()];
    const alphabet = '{}[]":,\\ u0123456789abcdefnrtlsEe.-+\n\t\u0001é😀';
    let accepted = 0;
    for (let n = 0; n < 20_000; n++) {
      let text = corpus[Math.floor(random() * corpus.length)]!;
      const edits = 1 + Math.floor(random() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * (text.length + 1));
        const pick = alphabet[Math.floor(random() * alphabet.length)]!;
        const op = random();
        if (op < 0.35) text = text.slice(0, at) + text.slice(at + 1);
        else if (op < 0.7) text = text.slice(0, at) + pick + text.slice(at);
        else text = text.slice(0, at) + pick + text.slice(at + 1);
      }
      if (checkAgainstParse(scan, text) !== COMPLEX) accepted++;
    }
    // Most single edits land in text or values and keep the chunk valid: the scan must still take those.
    expect(accepted).toBeGreaterThan(2_000);
  });

  it('reads chunks that differ from the last one only in their content string as JSON.parse does', () => {
    const random = seededRandom(7);
    const scan = new OpenAiChunkScan();
    const alphabet = ['a', ' ', '"', '\\', '\\"', '\\n', '\\u00e9', '\\u00', '\\x', '\n', '\u0001', 'é', '😀', '","refusal":"x', '"},"finish_reason":"stop', '"}', '"{"choices":[]}'];
    let accepted = 0;
    for (const base of SHAPES.slice(1, 6)) {
      const start = base.indexOf('"content":"') + 11;
      const end = start + base.slice(start).match(/^(?:[^"\\]|\\.)*/)![0].length; // the closing quote
      for (let n = 0; n < 2_000; n++) {
        expect(scan.scan(base)).toBe(SIMPLE); // primes the template
        let middle = '';
        const parts = Math.floor(random() * 6);
        for (let k = 0; k < parts; k++) middle += alphabet[Math.floor(random() * alphabet.length)];
        const text = base.slice(0, start) + middle + base.slice(end);
        if (checkAgainstParse(scan, text) === SIMPLE) accepted++;
      }
    }
    expect(accepted).toBeGreaterThan(2_000);
  });

  it('scans a chunk whose new content string ends early from its start, not from where that string ended', () => {
    const scan = new OpenAiChunkScan();
    const base = '{"choices":[{"delta":{"content":"Hello"}}]}';
    expect(scan.scan(base)).toBe(SIMPLE);
    // The same head and tail; the string closes at once and an object follows it: invalid as a whole.
    expect(scan.scan('{"choices":[{"delta":{"content":""{"a":[{"b":{"c":""}}]}')).toBe(COMPLEX);
  });

  it('reads a slice of a longer string (a frame) at its offsets', () => {
    const scan = new OpenAiChunkScan();
    const frame = `data: ${SHAPES[1]}\n\n`;
    expect(scan.scan(frame, 6, frame.length - 2)).toBe(SIMPLE);
    expect(frame.slice(scan.contentStart, scan.contentEnd)).toBe('"Hello"');
    expect(scan.scan(frame)).toBe(COMPLEX);
  });
});

describe('StreamOutputGuard in place', () => {
  const policy = compilePolicy({ pii: { email: 'redact', phone: 'redact', secret: 'block' }, deny_words: ['kaboom'] });
  const frame = (content: string, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', system_fingerprint: 'fp', choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: finish }] })}\n\n`;

  /** The client's frames, parsed; `parseAll` forces the guard's parse-and-serialize path. */
  function run(frames: string[], parseAll: boolean): { chunks: unknown[]; ok: boolean; findings: unknown[] } {
    const guard = new StreamOutputGuard(policy);
    if (parseAll) (guard as unknown as { shape: { scan: () => number } }).shape = { scan: () => COMPLEX };
    const chunks: unknown[] = [];
    let ok = true;
    for (const f of frames) {
      const batch: Array<string | Uint8Array> = [f];
      ok = guard.transform(batch);
      for (const b of batch) {
        const text = typeof b === 'string' ? b : Buffer.from(b).toString();
        chunks.push(text.startsWith('data: {') ? JSON.parse(text.slice(6)) : text);
      }
      if (!ok) break;
    }
    return { chunks, ok, findings: guard.findings() };
  }

  it('sends what the parsing path sends, on random texts split at random points', () => {
    const random = seededRandom(6);
    const words = ['hello', 'world', 'alice@example.com', '+1 415 555 0100', 'kaboom', 'line\nbreak', 'quote"d', 'back\\slash', 'é', '😀', 'ok.', ' ', 'sk-proj-abcdefghijklmnopqrstuvwxyz0123'];
    for (let n = 0; n < 300; n++) {
      let text = '';
      const count = 5 + Math.floor(random() * 80);
      for (let w = 0; w < count; w++) text += words[Math.floor(random() * words.length)] + (random() < 0.7 ? ' ' : '');
      const frames: string[] = [];
      for (let at = 0; at < text.length; ) {
        let next = Math.min(text.length, at + 1 + Math.floor(random() * 12));
        if (/[\uD800-\uDBFF]/.test(text[next - 1] ?? '')) next++;
        frames.push(frame(text.slice(at, next)));
        at = next;
      }
      frames.push(frame('', 'stop'), 'data: [DONE]\n\n');
      const inPlace = run(frames, false);
      const parsed = run(frames, true);
      expect(inPlace).toEqual(parsed);
    }
  });
});
