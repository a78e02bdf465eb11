// `npm run bench:stream-chunks [-- --baseline REF] [--rounds N] [--json FILE]`: the gateway's own
// JavaScript per streamed answer, without sockets: the upstream's SSE bytes parsed, translated for
// the client (OpenAI chat) and, for a guarded key, through the stream output guard, on the stream
// scenario's answer (the mock's 64 tokens with usage, in the pieces it sends them). For a plain key
// and for a key with the bench's guardrail policy. The baseline is src/ as committed at REF
// (default HEAD), bundled from git into dist/ and measured in the same rounds (interleaved), so a
// change reads against its own tree on the same machine minute; the frames of both must be equal.
import { parseArgs } from 'node:util';
import { compilePolicy } from '../src/guardrails/policy.js';
import { StreamOutputGuard } from '../src/guardrails/stream-output.js';
import type { GuardrailPolicy } from '../src/guardrails/types.js';
import { planMockResponse } from '../src/providers/mock/generate.js';
import { OpenAiStreamTranslator } from '../src/providers/openai-compatible/stream.js';
import type { FrameSink } from '../src/providers/types.js';
import { SseParser } from '../src/streaming/sse-parser.js';
import { bundleAtRef, emitReport, pad, progress, round } from './lib/baseline.js';
import { BENCH_GUARDRAILS } from './lib/nemo-config.js';

/** What the measured path is made of, from either tree. */
interface StreamPath {
  readonly SseParser: typeof SseParser;
  readonly OpenAiStreamTranslator: typeof OpenAiStreamTranslator;
  readonly StreamOutputGuard: typeof StreamOutputGuard;
  readonly compilePolicy: typeof compilePolicy;
}

type KeyKind = 'plain' | 'guarded';
const KINDS: readonly KeyKind[] = ['plain', 'guarded'];
const CELL_MS = 150;
const ENTRY = `export { SseParser } from './src/streaming/sse-parser.ts';
export { OpenAiStreamTranslator } from './src/providers/openai-compatible/stream.ts';
export { StreamOutputGuard } from './src/guardrails/stream-output.ts';
export { compilePolicy } from './src/guardrails/policy.ts';
`;

/** The stream scenario's upstream answer: the mock's SSE pieces for 64 tokens with usage. */
function upstreamPieces(): Buffer[] {
  const plan = planMockResponse(
    { model: 'mock', messages: [{ role: 'user', content: 'Tell me a story.' }], stream: true, stream_options: { include_usage: true }, max_tokens: 64 },
    { ttftMs: 0, tokensPerSecond: 50, completionTokens: 64, reportUsage: true, fault: 'none' },
    'chatcmpl-bench',
  );
  return plan.pieces.map((piece) => Buffer.from(piece));
}

/** One answer through `path`: returns what the client would be sent, frame by frame. */
function streamOnce(path: StreamPath, pieces: readonly Buffer[], policy: ReturnType<typeof compilePolicy> | undefined, keep: string[] | undefined): number {
  const frames: Array<string | Uint8Array> = [];
  const sink: FrameSink = { push: (frame) => void frames.push(frame) };
  const translator = new path.OpenAiStreamTranslator({ requestId: 'req', publicModel: 'mock', created: 1, clientWantsUsage: true });
  const guard = policy === undefined ? undefined : new path.StreamOutputGuard(policy);
  const parser = new path.SseParser((event) => translator.onEvent(event, sink));
  let bytes = 0;
  for (const piece of pieces) {
    parser.push(piece);
    if (guard !== undefined && !guard.transform(frames)) throw new Error('the guard stopped the bench answer');
    for (const frame of frames) {
      bytes += frame.length;
      keep?.push(typeof frame === 'string' ? frame : Buffer.from(frame).toString('utf8'));
    }
    frames.length = 0;
  }
  parser.end();
  return bytes;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { baseline: { type: 'string', default: 'HEAD' }, rounds: { type: 'string', default: '9' }, json: { type: 'string' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const startedAt = performance.now();

  progress(`bundling src/ at ${values.baseline}`);
  const baseline = await bundleAtRef<StreamPath>(values.baseline, 'stream', ENTRY);
  const current: StreamPath = { SseParser, OpenAiStreamTranslator, StreamOutputGuard, compilePolicy };
  const impls: Array<[string, StreamPath]> = [
    ['baseline', baseline.module],
    ['current', current],
  ];
  const pieces = upstreamPieces();
  const policies = new Map<string, ReturnType<typeof compilePolicy> | undefined>();
  for (const [impl, path] of impls) {
    policies.set(`${impl}/plain`, undefined);
    policies.set(`${impl}/guarded`, path.compilePolicy(BENCH_GUARDRAILS as GuardrailPolicy));
  }

  // Both trees must send the client the same frames, or the comparison means nothing.
  const mismatches: string[] = [];
  for (const kind of KINDS) {
    const [a, b] = impls.map(([impl, path]) => {
      const out: string[] = [];
      streamOnce(path, pieces, policies.get(`${impl}/${kind}`), out);
      return out.join('');
    });
    if (a !== b) mismatches.push(kind);
  }

  const samples = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    progress(`round ${r + 1}/${rounds}`);
    for (const kind of KINDS) {
      // Alternate which side goes first, so neither always runs on the other's warm caches.
      for (const [impl, path] of r % 2 === 0 ? impls : [...impls].reverse()) {
        const key = `${kind}/${impl}`;
        const cell = samples.get(key) ?? samples.set(key, []).get(key)!;
        const policy = policies.get(`${impl}/${kind}`);
        const began = performance.now();
        let streams = 0;
        while (performance.now() - began < CELL_MS) {
          for (let i = 0; i < 20; i++) streamOnce(path, pieces, policy, undefined);
          streams += 20;
        }
        cell.push(((performance.now() - began) * 1000) / streams);
      }
    }
  }

  const chunks = pieces.length;
  const rows = KINDS.map((kind) => {
    const [base, now] = impls.map(([impl]) => median(samples.get(`${kind}/${impl}`)!));
    return { key: kind, baselineUsPerStream: round(base!), currentUsPerStream: round(now!), currentUsPerChunk: round(now! / chunks, 2), speedup: round(base! / now!, 2) };
  });
  const report = {
    scenario: 'stream-chunks',
    node: process.version,
    baseline: { ref: values.baseline, commit: baseline.commit },
    settings: { rounds, cellMs: CELL_MS, upstreamPieces: chunks, policy: BENCH_GUARDRAILS },
    sameFrames: mismatches.length === 0,
    mismatches,
    rows,
    elapsedS: round((performance.now() - startedAt) / 1000),
  };
  await emitReport(render(report), report, values.json);
  if (mismatches.length > 0) process.exitCode = 1;
}

function render(report: { baseline: { ref: string; commit: string }; settings: { rounds: number; upstreamPieces: number }; sameFrames: boolean; mismatches: string[]; rows: Array<Record<string, string | number>>; elapsedS: number }): string {
  const lines = [
    `one streamed answer (${report.settings.upstreamPieces} upstream pieces, 64 tokens with usage): SSE parse, OpenAI translation, output guard;`,
    `medians over ${report.settings.rounds} interleaved rounds; baseline ${report.baseline.ref} (${report.baseline.commit.slice(0, 10)}) vs the working tree`,
    '',
    'key        baseline µs/stream   current µs/stream   current µs/chunk   speedup',
  ];
  for (const row of report.rows) {
    lines.push(`${String(row.key).padEnd(10)} ${pad(row.baselineUsPerStream, 18)} ${pad(row.currentUsPerStream, 19)} ${pad(row.currentUsPerChunk, 18)} ${pad(`${row.speedup}x`, 9)}`);
  }
  lines.push('', report.sameFrames ? 'same frames for the client from both trees' : `FRAMES DIFFER: ${report.mismatches.join(', ')}`, `${report.elapsedS} s`);
  return lines.join('\n');
}


function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:stream-chunks failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
