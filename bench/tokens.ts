// `node [--expose-gc] dist/bench/tokens.js [--min-ms N] [--json FILE]` (after `npm run build`):
// what exact token counting costs. First the import time and memory of src/tokens/count.ts (so run
// it in a fresh process); then tokens/s of countTextTokens on o200k_base for ~100, 1k, 10k and
// 100k-token prose, gpt-tokenizer's merge cache warm (the same text again) and cold (cleared before
// each call), against baselines in the same run: the UTF-8 byte bound, the long-piece path on the
// same text, and tiktoken (WASM) when installed; then adversarial input (one long piece) against
// gpt-tokenizer's own quadratic merge.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const gc = (globalThis as { gc?: () => void }).gc;
const memory = (): { rssMb: number; heapMb: number } => {
  gc?.(); // with --expose-gc the heap numbers are live data, not garbage too
  const usage = process.memoryUsage();
  return { rssMb: round(usage.rss / 2 ** 20), heapMb: round(usage.heapUsed / 2 ** 20) };
};
const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

// Before anything else loads the tokenizer.
const beforeImport = memory();
const importStarted = performance.now();
const { countTextTokens, upperBoundTokens } = await import('../src/tokens/count.js');
const importMs = round(performance.now() - importStarted);
const afterImport = memory();
const { countTextTokensLongPieces } = await import('../src/tokens/long-pieces.js');
const o200k = await import('gpt-tokenizer/encoding/o200k_base');

interface Rate {
  calls: number;
  msPerCall: number;
  tokensPerSec: number;
}

/** Calls `fn` until `minMs` have passed (at least 3 times) after one warm-up call. */
function measure(tokens: number, minMs: number, fn: () => unknown, beforeEach?: () => void): Rate {
  beforeEach?.();
  fn();
  let calls = 0;
  let busyMs = 0;
  while (busyMs < minMs || calls < 3) {
    beforeEach?.();
    const started = performance.now();
    fn();
    busyMs += performance.now() - started;
    calls++;
  }
  const msPerCall = busyMs / calls;
  return { calls, msPerCall: round(msPerCall, 3), tokensPerSec: Math.round((tokens / msPerCall) * 1000) };
}

const WORDS = (
  'the of and to in is was for that on as with by at from they which this be are or an had not but what all ' +
  'were when we there can more if no out so said up its about than into them only some could time these two ' +
  'may then first any my now such like over even most made after also did many before must through back years ' +
  'where much your way well down should because each just those people how too little state good very make ' +
  'world still own see work long get here between both life being under never day same another know while ' +
  'gateway latency throughput ledger reservation streaming backpressure encoding vocabulary merge rank tokenizer'
).split(' ');

/** Seeded prose (mulberry32) with punctuation, numbers and a little non-ASCII. */
function prose(seed: number, words: number): string {
  let state = seed;
  const random = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const parts: string[] = [];
  for (let i = 0; i < words; i++) {
    const r = random();
    let word = WORDS[Math.floor(random() * WORDS.length)]!;
    if (r < 0.03) word = String(Math.floor(random() * 100_000));
    else if (r < 0.04) word = ['café', 'naïve', 'Größe', '東京', 'δοκιμή', '🚀'][Math.floor(random() * 6)]!;
    parts.push(word);
    if (random() < 0.1) parts.push(random() < 0.2 ? '.\n\n' : random() < 0.5 ? '.' : ',');
  }
  return parts.join(' ');
}

/** Prose of about `tokens` o200k tokens. */
function proseOfTokens(tokens: number): string {
  let words = Math.ceil(tokens * 0.8);
  let text = prose(tokens, words);
  for (let i = 0; i < 8; i++) {
    const counted = countTextTokens(text, 'o200k_base');
    if (Math.abs(counted - tokens) <= tokens * 0.02) break;
    words = Math.max(1, Math.round((words * tokens) / counted));
    text = prose(tokens, words);
  }
  return text;
}

interface Tiktoken {
  encode_ordinary(text: string): Uint32Array;
}

async function loadTiktoken(): Promise<Tiktoken | undefined> {
  try {
    const tiktoken = (await import('tiktoken')) as { get_encoding(name: string): Tiktoken };
    return tiktoken.get_encoding('o200k_base');
  } catch {
    return undefined; // a devDependency: absent from a production install
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'min-ms': { type: 'string', default: '1000' }, json: { type: 'string' } } });
  const minMs = Number(values['min-ms']);
  if (!Number.isFinite(minMs) || minMs <= 0) throw new Error('--min-ms must be a positive number');
  const tiktoken = await loadTiktoken();
  const report: Record<string, unknown> = {
    scenario: 'tokens',
    node: process.version,
    import: { importMs, rssDeltaMb: round(afterImport.rssMb - beforeImport.rssMb), heapDeltaMb: round(afterImport.heapMb - beforeImport.heapMb) },
    settings: { minMs, encoding: 'o200k_base', tiktoken: tiktoken !== undefined },
  };
  console.log(`import of src/tokens/count.js: ${importMs} ms, RSS +${(report.import as { rssDeltaMb: number }).rssDeltaMb} MB, heap +${round(afterImport.heapMb - beforeImport.heapMb)} MB`);

  const sizes: Record<string, unknown> = {};
  console.log('\ntokens   chars  warm tok/s  cold tok/s  ms/call(cold)  bytes-bound tok/s  long-path tok/s  tiktoken tok/s');
  for (const target of [100, 1_000, 10_000, 100_000]) {
    const text = proseOfTokens(target);
    const tokens = countTextTokens(text, 'o200k_base');
    const row = {
      tokens,
      chars: text.length,
      warm: measure(tokens, minMs, () => countTextTokens(text, 'o200k_base')),
      cold: measure(tokens, minMs, () => countTextTokens(text, 'o200k_base'), () => o200k.clearMergeCache()),
      bytesBound: measure(tokens, minMs / 4, () => upperBoundTokens(text)),
      longPath: measure(tokens, minMs, () => countTextTokensLongPieces(text, 'o200k_base')),
      tiktoken: tiktoken === undefined ? undefined : measure(tokens, minMs, () => tiktoken.encode_ordinary(text).length),
    };
    sizes[String(target)] = row;
    console.log(
      [String(tokens).padStart(6), String(text.length).padStart(7), String(row.warm.tokensPerSec).padStart(11), String(row.cold.tokensPerSec).padStart(11), String(row.cold.msPerCall).padStart(14), String(row.bytesBound.tokensPerSec).padStart(18), String(row.longPath.tokensPerSec).padStart(16), String(row.tiktoken?.tokensPerSec ?? '-').padStart(15)].join(' '),
    );
  }
  report.sizes = sizes;

  // One long piece: countTextTokens takes the O(n log n) path; gpt-tokenizer's countTokens is quadratic.
  const adversarial: Record<string, unknown> = {};
  console.log('\nadversarial input              chars   countTextTokens ms   gpt-tokenizer ms');
  const cjk = '我们今天讨论大型语言模型的分词方法以及它对计费的影响';
  const inputs: Array<[string, (n: number) => string, number[]]> = [
    ['spaces', (n) => ' '.repeat(n), [20_000, 100_000]],
    ['one letter repeated', (n) => 'a'.repeat(n), [20_000, 100_000]],
    ['CJK without punctuation', (n) => Array.from({ length: n }, (_, i) => cjk[(i * 7) % cjk.length]).join(''), [5_000, 20_000]],
  ];
  for (const [name, make, lengths] of inputs) {
    for (const length of lengths) {
      const text = make(length);
      const started = performance.now();
      const tokens = countTextTokens(text, 'o200k_base');
      const oursMs = round(performance.now() - started);
      // The quadratic merge only where it ends in seconds; the merge cache is cleared so it merges.
      let theirsMs: number | undefined;
      if (length <= 20_000) {
        o200k.clearMergeCache();
        const theirsStarted = performance.now();
        o200k.countTokens(text, { disallowedSpecial: new Set() });
        theirsMs = round(performance.now() - theirsStarted);
      }
      adversarial[`${name} ${length}`] = { tokens, countTextTokensMs: oursMs, gptTokenizerMs: theirsMs };
      console.log(`${name.padEnd(24)} ${String(length).padStart(11)} ${String(oursMs).padStart(20)} ${String(theirsMs ?? 'skipped').padStart(18)}`);
    }
  }
  report.adversarial = adversarial;
  report.memoryAfterMb = memory();

  if (values.json !== undefined) {
    await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${values.json}`);
  }
}

await main();
