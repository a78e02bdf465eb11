// Deterministic, realistic prompt text for the micro benches: a support/engineering conversation
// mixing prose, TypeScript snippets and JSON log lines, with the PII a real prompt carries (emails,
// phone numbers) at a low rate. Seeded: the same seed gives the same text on every machine.

/** mulberry32: small, fast, good enough to pick words. */
export function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is was for that on as with by at from they which this be are or an had not but what all ' +
  'were when we there can more if no out so said up its about than into them only some could time these two ' +
  'may then first any my now such like over even most made after also did many before must through back years ' +
  'where much your way well down should because each just those people how too little state good very make ' +
  'customer request invoice deployment gateway latency throughput ledger reservation streaming retry timeout ' +
  'upstream model prompt tokens billing account error response header payload cache region cluster database'
).split(' ');
const NAMES = ['alice', 'bob', 'carol', 'dmitri', 'emma', 'farid', 'grace', 'hiro', 'ines', 'jonas', 'kemal', 'lena'];
const DOMAINS = ['example.com', 'acme.io', 'contoso.org', 'mail.example.net'];
const EXOTIC = ['café', 'naïve', 'Größe', '東京', 'δοκιμή', 'résumé', '🚀'];
const VERBS = ['fetch', 'load', 'resolve', 'settle', 'parse', 'render', 'flush', 'retry', 'compute', 'validate'];
const NOUNS = ['Invoice', 'Account', 'Reservation', 'Deployment', 'Usage', 'Token', 'Header', 'Stream', 'Batch', 'Quota'];
const LEVELS = ['info', 'warn', 'error', 'debug'];

type Random = () => number;
const pick = <T>(random: Random, list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
const int = (random: Random, below: number): number => Math.floor(random() * below);
const hex = (random: Random, length: number): string => Array.from({ length }, () => int(random, 16).toString(16)).join('');

function email(random: Random): string {
  return `${pick(random, NAMES)}.${pick(random, NAMES)}${int(random, 100)}@${pick(random, DOMAINS)}`;
}

function phone(random: Random): string {
  const n = (digits: number) => String(10 ** (digits - 1) + int(random, 9 * 10 ** (digits - 1)));
  return random() < 0.5 ? `+1 415 ${n(3)} ${n(4)}` : `(212) ${n(3)}-${n(4)}`;
}

function sentence(random: Random): string {
  const words: string[] = [];
  const length = 6 + int(random, 15);
  for (let i = 0; i < length; i++) {
    const r = random();
    if (r < 0.01) words.push(email(random));
    else if (r < 0.015) words.push(phone(random));
    else if (r < 0.04) words.push(String(int(random, 100_000)));
    else if (r < 0.05) words.push(pick(random, EXOTIC));
    else words.push(pick(random, WORDS));
    if (i < length - 1 && random() < 0.08) words.push(',');
  }
  const text = words.join(' ').replaceAll(' ,', ',');
  return `${text[0]!.toUpperCase()}${text.slice(1)}${random() < 0.15 ? '?' : '.'}`;
}

function prose(random: Random): string {
  return Array.from({ length: 2 + int(random, 4) }, () => sentence(random)).join(' ');
}

function code(random: Random): string {
  const noun = pick(random, NOUNS);
  const verb = pick(random, VERBS);
  const v = `${noun[0]!.toLowerCase()}${noun.slice(1)}`;
  return [
    '```ts',
    `export async function ${verb}${noun}(id: string, options: { timeoutMs?: number } = {}): Promise<${noun} | undefined> {`,
    `  const response = await client.${verb}(\`/v1/${v.toLowerCase()}s/\${id}\`, { timeoutMs: options.timeoutMs ?? ${int(random, 10) * 500 + 500} });`,
    `  if (response.status === ${pick(random, [404, 409, 429, 503])}) return undefined;`,
    `  const ${v} = (await response.json()) as ${noun};`,
    `  for (const item of ${v}.items ?? []) total += item.amount * ${int(random, 90) + 10};`,
    `  return { ...${v}, checkedAt: Date.now() };`,
    '}',
    '```',
  ].join('\n');
}

function logs(random: Random): string {
  return Array.from({ length: 1 + int(random, 3) }, () =>
    JSON.stringify({
      level: pick(random, LEVELS),
      ts: `2025-0${1 + int(random, 9)}-1${int(random, 10)}T1${int(random, 10)}:${10 + int(random, 50)}:${10 + int(random, 50)}.${100 + int(random, 900)}Z`,
      requestId: `req_${hex(random, 16)}`,
      latencyMs: int(random, 5000),
      msg: sentence(random),
      ...(random() < 0.2 ? { user: email(random) } : {}),
    }),
  ).join('\n');
}

/** One paragraph-sized piece: prose 60 %, code 25 %, log lines 15 %. */
function segment(random: Random): string {
  const r = random();
  return r < 0.6 ? prose(random) : r < 0.85 ? code(random) : logs(random);
}

/** About `tokens` tokens (as `count` counts them): whole segments are added until the target is reached, then cut at a word. */
export function textOfTokens(seed: number, tokens: number, count: (text: string) => number): string {
  const random = seededRandom(seed);
  const parts: string[] = [];
  let approx = 0;
  while (approx < tokens) {
    const part = segment(random);
    parts.push(part);
    approx += count(part) + 1;
  }
  let text = parts.join('\n\n');
  // The last segment may overshoot a small target: trim words until within 5 %.
  while (count(text) > tokens * 1.05) {
    const cut = text.lastIndexOf(' ', text.length - 2);
    if (cut <= 0) break;
    text = text.slice(0, cut);
  }
  return text;
}

/** `chars` characters (at most), cut at a space. */
export function textOfChars(seed: number, chars: number): string {
  const random = seededRandom(seed);
  const parts: string[] = [];
  let length = 0;
  while (length < chars) {
    const part = segment(random);
    parts.push(part);
    length += part.length + 2;
  }
  const text = parts.join('\n\n');
  const cut = text.lastIndexOf(' ', chars);
  return text.slice(0, cut > chars * 0.9 ? cut : chars);
}
