// `npm run bench:guardrails [-- --baseline REF] [--rounds N] [--json FILE]`: what one inline
// guardrail scan costs (scanText, input stage), per KB, on the big-prompt scenario's ~80 KB prompts,
// a 2,000-character text and one-line prompts, for the bench's guarded policy with and without ten
// deny patterns. The baseline is src/guardrails as committed at REF (default HEAD), bundled from git
// into dist/ and measured in the same rounds (interleaved), so a change reads against its own tree.
import { parseArgs } from 'node:util';
import * as current from '../src/guardrails/policy.js';
import type { GuardrailPolicy } from '../src/guardrails/types.js';
import { bundleAtRef, emitReport, pad, progress, round } from './lib/baseline.js';
import { bigPrompts } from './lib/big-prompts.js';
import { BENCH_GUARDRAILS } from './lib/nemo-config.js';
import { textOfChars } from './lib/prompt-text.js';

type Scanner = Pick<typeof current, 'compilePolicy' | 'scanText'>;

/** Deny patterns an admin might write: ids, tickets, markers; none occurs in the bench's texts. */
const DENY_PATTERNS = [
  'ACME-[0-9]{6}',
  'PRJ-[A-Z]{3}-\\d{4}',
  'TICKET-\\d{4,8}',
  'internal\\s+only',
  '\\bcodename [A-Z][a-z]+',
  'EMP\\d{6}',
  '(?:falcon|osprey)-(?:alpha|beta)\\d',
  'XK-[A-F0-9]{8}',
  'salary:? *\\$?\\d{5,}',
  'CONFIDENTIAL',
];
const POLICIES: Record<string, GuardrailPolicy> = {
  bench: BENCH_GUARDRAILS as GuardrailPolicy,
  'bench+patterns': { ...(BENCH_GUARDRAILS as GuardrailPolicy), deny_patterns: DENY_PATTERNS },
};
const ONE_LINERS = [
  'Summarize the attached release notes for the gateway in three short bullet points, please.',
  'What is the difference between a hold and a settlement in the ledger?',
  'Translate "the upstream timed out after 30 seconds" into German.',
  'Write a haiku about streaming tokens.',
];
const CELL_MS = 150;
const MIN_REPS = 5;

interface Size {
  readonly label: string;
  readonly texts: readonly string[];
  readonly chars: number;
}

/** src/guardrails at `ref`, bundled (see lib/baseline.ts). */
async function baselineAt(ref: string): Promise<{ scanner: Scanner; commit: string }> {
  const { module, commit } = await bundleAtRef<Scanner>(ref, 'guardrails', "export { compilePolicy, scanText } from './src/guardrails/policy.ts';\n");
  return { scanner: module, commit };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { baseline: { type: 'string', default: 'HEAD' }, rounds: { type: 'string', default: '5' }, json: { type: 'string' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const startedAt = performance.now();

  progress(`bundling src/guardrails at ${values.baseline}`);
  const baseline = await baselineAt(values.baseline);
  const impls: Array<[string, Scanner]> = [
    ['baseline', baseline.scanner],
    ['current', current],
  ];
  const sizes: Size[] = [sized('80 KB', bigPrompts()), sized('2,000 chars', [0, 1, 2, 3].map((v) => textOfChars(2_000 * 10 + v, 2_000))), sized('one line', ONE_LINERS)];

  // Compiled once per implementation, as the gateway caches them; results compared once per text.
  const compiled = new Map<string, unknown>();
  const mismatches: string[] = [];
  for (const [policyName, policy] of Object.entries(POLICIES)) {
    for (const [impl, scanner] of impls) compiled.set(`${impl}/${policyName}`, scanner.compilePolicy(policy));
    for (const size of sizes) {
      for (const text of size.texts) {
        const [a, b] = impls.map(([impl, scanner]) => JSON.stringify(scanner.scanText(compiled.get(`${impl}/${policyName}`) as never, text, 'input')));
        if (a !== b) mismatches.push(`${policyName}/${size.label}`);
      }
    }
  }

  const samples = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    progress(`round ${r + 1}/${rounds}`);
    for (const policyName of Object.keys(POLICIES)) {
      for (const size of sizes) {
        // Alternate which side goes first, so neither always runs on the other's warm caches.
        for (const [impl, scanner] of r % 2 === 0 ? impls : [...impls].reverse()) {
          const key = `${policyName}/${size.label}/${impl}`;
          const cell = samples.get(key) ?? samples.set(key, []).get(key)!;
          const policy = compiled.get(`${impl}/${policyName}`) as never;
          const deadline = performance.now() + CELL_MS;
          for (let rep = 0; rep < MIN_REPS || performance.now() < deadline; rep++) {
            const text = size.texts[rep % size.texts.length]!;
            const started = performance.now();
            scanner.scanText(policy, text, 'input');
            cell.push((performance.now() - started) * 1000);
          }
        }
      }
    }
  }

  const rows = Object.keys(POLICIES).flatMap((policy) =>
    sizes.map((size) => {
      const [base, now] = impls.map(([impl]) => quantile(samples.get(`${policy}/${size.label}/${impl}`)!, 0.5));
      const kb = size.chars / 1024;
      return {
        policy,
        size: size.label,
        chars: size.chars,
        baselineUs: round(base!),
        currentUs: round(now!),
        baselineUsPerKb: round(base! / kb),
        currentUsPerKb: round(now! / kb),
        speedup: round(base! / now!, 2),
        n: samples.get(`${policy}/${size.label}/current`)!.length,
      };
    }),
  );
  const report = {
    scenario: 'guardrails',
    node: process.version,
    baseline: { ref: values.baseline, commit: baseline.commit },
    settings: { rounds, cellMs: CELL_MS, policies: POLICIES },
    sameResults: mismatches.length === 0,
    mismatches,
    rows,
    elapsedS: round((performance.now() - startedAt) / 1000),
  };
  await emitReport(render(report), report, values.json);
}

function sized(label: string, texts: string[]): Size {
  return { label, texts, chars: Math.round(texts.reduce((sum, t) => sum + t.length, 0) / texts.length) };
}

function render(report: { baseline: { ref: string; commit: string }; settings: { rounds: number }; sameResults: boolean; mismatches: string[]; rows: Array<Record<string, string | number>>; elapsedS: number }): string {
  const lines = [
    `scanText (input) inline, medians over ${report.settings.rounds} interleaved rounds; baseline ${report.baseline.ref} (${report.baseline.commit.slice(0, 10)}) vs the working tree`,
    '',
    'policy           size          chars   baseline µs   current µs   baseline µs/KB   current µs/KB   speedup',
  ];
  for (const row of report.rows) {
    lines.push(
      `${String(row.policy).padEnd(16)} ${String(row.size).padEnd(12)} ${pad(row.chars, 6)} ${pad(row.baselineUs, 13)} ${pad(row.currentUs, 12)} ${pad(row.baselineUsPerKb, 16)} ${pad(row.currentUsPerKb, 15)} ${pad(`${row.speedup}x`, 9)}`,
    );
  }
  lines.push('', report.sameResults ? 'same findings, offsets and redactions on every text' : `RESULTS DIFFER: ${report.mismatches.join(', ')}`, `${report.elapsedS} s`);
  return lines.join('\n');
}


function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:guardrails failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
