// What the one mock upstream does for each kind of request, and the NemoRouter configuration that
// asks for it. The mock's behaviour is switched per request by x-mock-* headers: the bench sends
// them itself to `direct` and `bare` (the bare proxy passes them on), and nemo's deployments carry
// the same headers, so all three targets see byte-identical upstream work.

/** x-mock-* headers per profile; a priced model `bench-<profile>` and a free twin `bench-<profile>-free` serve each. */
export const MOCK_PROFILES = {
  /** No delay, 16 tokens (the request's max_tokens): the proxies' own cost dominates. */
  chat: {},
  /** 64 tokens at 50 tokens/s: 64 content chunks 20 ms apart, ~1.3 s per stream. */
  stream: { 'x-mock-tokens-per-second': '50', 'x-mock-completion-tokens': '64' },
  /** The mixed scenario's streams: 16 tokens at 200 tokens/s (~80 ms). */
  'short-stream': { 'x-mock-tokens-per-second': '200', 'x-mock-completion-tokens': '16' },
  /** As above without usage: the gateway must count the generated text itself to settle. */
  'short-stream-no-usage': { 'x-mock-tokens-per-second': '200', 'x-mock-completion-tokens': '16', 'x-mock-usage': 'off' },
  /** Every request answered 500: nemo's attempt fails, the hold is released, the client gets 502. */
  faulty: { 'x-mock-fault': 'http-500' },
  /** The agent's streams: 64 tokens (its max_tokens) or a tool call, sent at once. */
  agent: { 'x-mock-completion-tokens': '64' },
  /** The connection is dropped halfway through the stream. */
  'cut-stream': { 'x-mock-tokens-per-second': '200', 'x-mock-completion-tokens': '16', 'x-mock-fault': 'cut-mid-stream' },
} as const satisfies Record<string, Record<string, string>>;

export type MockProfile = keyof typeof MOCK_PROFILES;

export const modelFor = (profile: MockProfile, free: boolean): string => `bench-${profile}${free ? '-free' : ''}`;

/**
 * Every key of the nemo target carries this policy: PII redaction, deny words, injection
 * heuristics, output scanning, and a token limit above the big prompts (~20k tokens) but below their
 * byte bound, so each big prompt is counted exactly. The bench's clean prompts match nothing; the
 * mixed scenario's block shape hits the deny word.
 */
export const BENCH_GUARDRAILS = {
  deny_words: ['project falcon', 'internal only'],
  pii: { email: 'redact', phone: 'redact', credit_card: 'block', iban: 'redact', us_ssn: 'block', ip_address: 'flag', secret: 'block' },
  injection: 'block',
  max_input_tokens: 32_000,
};

/**
 * The agent scenario's keys: the same policy with a token limit that admits its conversations
 * (up to ~100k tokens of history plus the new turn, the system prompt and the tools). A history
 * whose bytes pass the limit is counted exactly, as a big prompt is.
 */
export const BENCH_AGENT_GUARDRAILS = { ...BENCH_GUARDRAILS, max_input_tokens: 128_000 };

export const BLOCKED_PROMPT = 'Tell me everything about project falcon';

/**
 * `connectionsPerOrigin` is raised to the most streams a run holds (the bare proxy gets the same):
 * with the default 256, stream 257 would wait for a free upstream connection, and the bench would
 * measure that queue rather than the gateway.
 */
export function nemoConfig(mockOrigin: string, connectionsPerOrigin: number): Record<string, unknown> {
  const deployment = (profile: MockProfile, priced: boolean) => ({
    provider: 'openai-compatible',
    model: 'mock',
    baseUrl: `${mockOrigin}/v1`,
    maxOutputTokens: 4096,
    // 'mock' is no OpenAI model name: without this, prompts would be held to their byte bound, not counted.
    encoding: 'o200k_base',
    headers: { ...MOCK_PROFILES[profile] },
    ...(priced ? { inputPricePerMTok: 1, outputPricePerMTok: 2 } : {}),
  });
  const models = (Object.keys(MOCK_PROFILES) as MockProfile[]).flatMap((profile) => [
    { name: modelFor(profile, false), deployments: [deployment(profile, true)] },
    { name: modelFor(profile, true), deployments: [deployment(profile, false)] },
  ]);
  return {
    // The bench stops nemo when it is done: no load balancer to tell.
    server: { shutdownGraceMs: 2000, drainDelayMs: 0 },
    upstream: { connectionsPerOrigin },
    auth: { demoOrg: false },
    models,
  };
}
