// The stream output guard over OpenAI chunks: every generated text field is scanned on its own
// (content, refusal, reasoning, tool-call arguments), matches split across chunks are caught, and a
// chunk that cannot be read stops the stream instead of going out unchecked.
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../src/guardrails/policy.js';
import { StreamOutputGuard } from '../../../src/guardrails/stream-output.js';

const POLICY = compilePolicy({ pii: { email: 'redact', secret: 'block' }, deny_words: ['kaboom'] });
const EMAIL = 'alice@example.com';

const frame = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;

/** Runs frames through a guard one upstream chunk at a time; returns what the client receives. */
function run(frames: string[]): { out: string[]; ok: boolean; guard: StreamOutputGuard } {
  const guard = new StreamOutputGuard(POLICY);
  const out: string[] = [];
  let ok = true;
  for (const f of frames) {
    const batch: Array<string | Uint8Array> = [f];
    ok = guard.transform(batch);
    out.push(...batch.map((b) => (typeof b === 'string' ? b : Buffer.from(b).toString())));
    if (!ok) break;
  }
  return { out, ok, guard };
}

/** Runs frames through a guard in batches of `size` (one upstream read of several chunks each). */
function runBatched(frames: string[], size: number): { out: string[]; ok: boolean } {
  const guard = new StreamOutputGuard(POLICY);
  const out: string[] = [];
  let ok = true;
  for (let i = 0; i < frames.length && ok; i += size) {
    const batch: Array<string | Uint8Array> = frames.slice(i, i + size);
    ok = guard.transform(batch);
    out.push(...batch.map((b) => (typeof b === 'string' ? b : Buffer.from(b).toString())));
  }
  return { out, ok };
}

/** Reassembles one field of choice 0 from the client's frames. */
function field(out: string[], pick: (delta: Record<string, any>) => string | undefined): string {
  let text = '';
  for (const f of out) {
    if (!f.startsWith('data: {')) continue;
    const chunk = JSON.parse(f.slice(6));
    for (const choice of chunk.choices ?? []) text += pick(choice.delta ?? {}) ?? '';
  }
  return text;
}

describe('StreamOutputGuard', () => {
  it('redacts an email split across content chunks at every position', () => {
    const text = `write to ${EMAIL} today`;
    for (let cut = 1; cut < text.length; cut++) {
      const { out, ok } = run([frame({ content: text.slice(0, cut) }), frame({ content: text.slice(cut) }), frame({}, 'stop'), 'data: [DONE]\n\n']);
      expect(ok).toBe(true);
      expect(field(out, (d) => d.content)).toBe('write to [REDACTED:EMAIL] today');
      expect(out.join('')).not.toContain('example.com');
    }
  });

  it('gives the client the same text when several chunks come in one read as one at a time', () => {
    const text = `write to ${EMAIL} today, and to ${EMAIL} tomorrow, then stop writing long lines`;
    const frames = [...text.match(/.{1,5}/gs)!.map((piece) => frame({ content: piece })), frame({}, 'stop'), 'data: [DONE]\n\n'];
    const single = run(frames);
    for (const size of [2, 3, 7, frames.length]) {
      const { out, ok } = runBatched(frames, size);
      expect(ok).toBe(true);
      expect(field(out, (d) => d.content)).toBe(field(single.out, (d) => d.content));
      expect(out.join('')).not.toContain('example.com');
      expect(out.at(-1)).toBe('data: [DONE]\n\n');
    }
  });

  it('sends nothing from the blocking chunk of a read on, though later chunks of the read were safe', () => {
    const frames = [frame({ content: 'all fine ' }), frame({ content: 'then kaboom ' }), frame({ content: 'and more text after it' }), frame({}, 'stop'), 'data: [DONE]\n\n'];
    const { out, ok } = runBatched(frames, frames.length);
    expect(ok).toBe(false);
    const sent = out.join('');
    expect(sent).not.toContain('kaboom');
    expect(sent).not.toContain('more text');
    expect(sent).not.toContain('[DONE]');
    expect(field(out, (d) => d.content)).toBe(field(run(frames).out, (d) => d.content));
  });

  it('scans tool-call arguments per tool, split across chunks, and releases them before the finish', () => {
    const args = `{"to":"${EMAIL}","note":"hi"}`;
    const cut = 12;
    const { out, ok } = run([
      frame({ tool_calls: [{ index: 0, id: 't1', type: 'function', function: { name: 'send', arguments: args.slice(0, cut) } }] }),
      frame({ tool_calls: [{ index: 0, function: { arguments: args.slice(cut) } }] }),
      frame({}, 'tool_calls'),
      'data: [DONE]\n\n',
    ]);
    expect(ok).toBe(true);
    const received = field(out, (d) => d.tool_calls?.map((c: any) => c.function?.arguments ?? '').join(''));
    expect(received).toBe('{"to":"[REDACTED:EMAIL]","note":"hi"}');
    expect(JSON.parse(received)).toEqual({ to: '[REDACTED:EMAIL]', note: 'hi' });
  });

  it('blocks a deny word in a refusal, sending nothing of it', () => {
    const { out, ok, guard } = run([frame({ refusal: 'I cannot, kab' }), frame({ refusal: 'oom it is' }), frame({}, 'stop')]);
    expect(ok).toBe(false);
    expect(guard.blocked?.rule).toMatch(/^deny_word/);
    expect(out.join('')).not.toContain('kaboom');
  });

  it('scans reasoning text too', () => {
    const { out } = run([frame({ reasoning_content: `the user is ${EMAIL}` }), frame({}, 'stop'), 'data: [DONE]\n\n']);
    expect(field(out, (d) => d.reasoning_content)).toBe('the user is [REDACTED:EMAIL]');
  });

  it('releases held text before [DONE] when no finish_reason came', () => {
    const { out, ok } = run([frame({ content: `mail ${EMAIL}` }), 'data: [DONE]\n\n']);
    expect(ok).toBe(true);
    expect(field(out, (d) => d.content)).toBe('mail [REDACTED:EMAIL]');
    expect(out.at(-1)).toBe('data: [DONE]\n\n');
  });

  it('stops the stream on a chunk it cannot parse instead of passing it on unchecked', () => {
    const bad = `data: {"choices":[{"index":0,"delta":{"content":"mail ${EMAIL} kaboom"}}],}\n\n`;
    const { out, ok, guard } = run([frame({ content: 'hello ' }), bad, frame({ content: 'more' })]);
    expect(ok).toBe(false);
    expect(guard.malformed).toBe(true);
    expect(out.join('')).not.toContain('kaboom');
    expect(out.join('')).not.toContain(EMAIL);
  });

  it('passes usage-only chunks through untouched', () => {
    const usage = `data: ${JSON.stringify({ id: 'c1', choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } })}\n\n`;
    const { out } = run([usage]);
    expect(out).toEqual([usage]);
  });

  it('sends a held chunk as the chunk with empty content, the same string for each of the stream\'s chunks', () => {
    const words = Array.from({ length: 40 }, (_, i) => `word${i} `);
    const { out, ok } = run([...words.map((w) => frame({ content: w })), frame({}, 'stop'), 'data: [DONE]\n\n']);
    expect(ok).toBe(true);
    const held = out.filter((f) => f.includes('"content":""'));
    // Text is held back while a match could still cross the chunk boundary and released at each
    // scan (every 64 characters): most chunks go out empty, each exactly as the chunk with "" for its text.
    expect(held.length).toBeGreaterThan(20);
    expect(held.every((f) => f === frame({ content: '' }))).toBe(true);
    expect(new Set(held).size).toBe(1);
    expect(field(out, (d) => d.content)).toBe(words.join(''));
  });
});
