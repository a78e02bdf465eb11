// Which public BPE encoding an upstream model uses: pure data and a lookup, no tokenizer loaded, so
// the config loader and the gateway thread pick encodings without paying for the vocabularies
// (tokens/count.ts). `undefined`: no published tokenizer, use the upper bound (tokens/upper-bound.ts).

export const ENCODINGS = ['o200k_base', 'cl100k_base'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/**
 * One rule: a model name equal to `family`, or starting with `family` followed by `-` or `.`
 * (so `gpt-4o` covers `gpt-4o-mini-2024-07-18` and `gpt-5` covers `gpt-5.1`, but `o1` does not
 * cover `o10`). The first matching rule wins, so a narrower family comes before a broader one.
 */
export interface ModelEncodingRule {
  readonly family: string;
  readonly encoding: Encoding;
}

/** OpenAI's families as tiktoken maps them; `gpt-4o` and `gpt-4.1` before their prefix `gpt-4`. */
export const DEFAULT_MODEL_ENCODINGS: readonly ModelEncodingRule[] = Object.freeze(
  (
    [
      ['gpt-4o', 'o200k_base'],
      ['chatgpt-4o', 'o200k_base'],
      ['gpt-4.1', 'o200k_base'],
      ['gpt-4.5', 'o200k_base'],
      ['gpt-5', 'o200k_base'],
      ['o1', 'o200k_base'],
      ['o3', 'o200k_base'],
      ['o4', 'o200k_base'],
      ['gpt-4', 'cl100k_base'],
      ['gpt-3.5', 'cl100k_base'],
      ['gpt-35', 'cl100k_base'], // Azure's spelling of gpt-3.5
      ['text-embedding-3', 'cl100k_base'],
      ['text-embedding-ada-002', 'cl100k_base'],
    ] as const
  ).map(([family, encoding]) => Object.freeze({ family, encoding })),
);

/**
 * The encoding of `upstreamModel` (the name sent upstream, not the gateway's alias), or undefined
 * when no rule matches (Claude, Llama, Mistral, ...). A routing prefix (`openai/gpt-4o`) and a
 * fine-tune wrapper (`ft:gpt-4o-mini:org::id`) are looked through; case does not matter.
 */
export function encodingForModel(upstreamModel: string, rules: readonly ModelEncodingRule[] = DEFAULT_MODEL_ENCODINGS): Encoding | undefined {
  const name = baseModelName(upstreamModel);
  for (const rule of rules) {
    if (name.startsWith(rule.family)) {
      const next = name.charCodeAt(rule.family.length);
      if (Number.isNaN(next) || next === DASH || next === DOT) return rule.encoding;
    }
  }
  return undefined;
}

export function isEncoding(value: unknown): value is Encoding {
  return (ENCODINGS as readonly unknown[]).includes(value);
}

const DASH = 0x2d;
const DOT = 0x2e;

function baseModelName(model: string): string {
  let name = model.trim().toLowerCase();
  const slash = name.lastIndexOf('/');
  if (slash !== -1) name = name.slice(slash + 1);
  if (name.startsWith('ft:')) name = name.slice(3);
  return name;
}
