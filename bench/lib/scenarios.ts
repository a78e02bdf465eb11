// The scenarios: what is sent, by how many loops, to each target. Every scenario is a request mix
// (mixed-load.ts) built per target, so the three targets get the same requests, byte for byte,
// except for what makes a target what it is (its keys, and free models for nemo-free).
import { conversations } from './agent-sessions.js';
import type { LoadScenario } from './mixed-load.js';
import { BLOCKED_PROMPT, MOCK_PROFILES, modelFor } from './nemo-config.js';
import type { MockProfile } from './nemo-config.js';
import type { Target } from './targets.js';
import type { Tenants } from './tenants.js';

export const SCENARIOS = ['chat', 'chat-hot', 'stream', 'latency', 'big-prompt', 'mixed', 'agent'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface ScenarioInput {
  target: Target;
  tenants: Tenants;
  /** The scenario's concurrency (settings or its default). */
  connections: number;
  streams: number;
  /** Only filled when big-prompt runs (they take a moment to make). */
  bigPrompts: readonly string[];
  /** agent: a session ends before its history would pass this many tokens. */
  historyTokens: number;
}

export interface ScenarioSpec {
  name: ScenarioName;
  description: string;
  /** Has stream timings (TTFT, gaps, stalls) worth a section of their own. */
  stream: boolean;
  /** Concurrent connections unless --connections says otherwise (stream: --streams; latency: always 1). */
  connections: number;
  warmupS: number;
  /** Loops start spread over this long. */
  startSpreadMs: number;
  drainTimeoutMs: number;
  mix(input: ScenarioInput): LoadScenario[];
}

const SHORT_PROMPT = 'Say hello to the benchmark';
const isOk = (status: number): boolean => status >= 200 && status < 300;

const chatBody = (model: string, content = SHORT_PROMPT) => ({ model, messages: [{ role: 'user', content }], max_tokens: 16 });
const streamBody = (model: string, maxTokens: number) => ({
  model,
  messages: [{ role: 'user', content: SHORT_PROMPT }],
  max_tokens: maxTokens,
  stream: true,
  stream_options: { include_usage: true },
});

/** Per key: the bearer and the mock profile's switches (nemo ignores them; its deployments set the same). */
function headers(keys: readonly string[], profile: MockProfile): Array<Record<string, string>> {
  return keys.map((key) => ({ authorization: `Bearer ${key}`, ...MOCK_PROFILES[profile] }));
}

/** One shape of requests on every loop: the scenarios that measure one thing. */
function single(input: ScenarioInput, profile: MockProfile, loops: number, body: unknown, keys = input.target.keys, bodies?: unknown[]): LoadScenario[] {
  return [{ name: input.target.name, headers: headers(keys, profile), body, ...(bodies ? { bodies } : {}), expectStatus: isOk, expectText: '2xx', loops, pauseMs: 0, priced: input.target.priced }];
}

/**
 * A refusal is answered in a fraction of a chat's time, so refusal and fault loops pause between
 * requests (as in the dashboard check) to stay a minority of the requests rather than most of them.
 */
const REFUSAL_PAUSE_MS = 50;
/** Shares of the mixed scenario's loops, in percent. */
const MIX_SHARES = { chat: 60, stream: 15, 'stream, no usage': 5, 'org without credits': 5, 'guardrail block': 5, 'upstream 500': 5, 'cut mid-stream': 5 } as const;
type MixShape = keyof typeof MIX_SHARES;

/** Every shape gets at least one loop; chat takes what rounding leaves. */
function mixLoops(connections: number): Record<MixShape, number> {
  const shapes = Object.keys(MIX_SHARES) as MixShape[];
  const loops = Object.fromEntries(shapes.map((shape) => [shape, Math.max(1, Math.round((MIX_SHARES[shape] * connections) / 100))])) as Record<MixShape, number>;
  const others = shapes.filter((shape) => shape !== 'chat').reduce((sum, shape) => sum + loops[shape], 0);
  loops.chat = Math.max(1, connections - others);
  return loops;
}

function mixed(input: ScenarioInput): LoadScenario[] {
  const { target, tenants } = input;
  const model = (profile: MockProfile) => modelFor(profile, target.freeModels);
  const loops = mixLoops(input.connections);
  const onNemo = target.kind === 'nemo';
  // What each refusal or fault looks like depends on the target: the mock answers everything it is not told to fail.
  const creditsRefused = onNemo && target.priced;
  const guardrailsOn = onNemo && target.guarded;
  const shape = (name: MixShape, profile: MockProfile, body: unknown, expect: [string, (s: number) => boolean], keys: readonly string[] = target.keys): LoadScenario => ({
    name,
    headers: headers(keys, profile),
    body,
    expectStatus: expect[1],
    expectText: expect[0],
    loops: loops[name],
    pauseMs: name === 'org without credits' || name === 'guardrail block' || name === 'upstream 500' ? REFUSAL_PAUSE_MS : 0,
    priced: target.priced,
  });
  const ok: [string, (s: number) => boolean] = ['2xx', isOk];
  return [
    shape('chat', 'chat', chatBody(model('chat')), ok),
    shape('stream', 'short-stream', streamBody(model('short-stream'), 16), ok),
    shape('stream, no usage', 'short-stream-no-usage', streamBody(model('short-stream-no-usage'), 16), ok),
    shape('org without credits', 'chat', chatBody(model('chat')), creditsRefused ? ['402', (s) => s === 402] : ok, [tenants.brokeKey]),
    shape('guardrail block', 'chat', chatBody(model('chat'), BLOCKED_PROMPT), guardrailsOn ? ['400', (s) => s === 400] : ok),
    shape('upstream 500', 'faulty', chatBody(model('faulty')), onNemo ? ['502', (s) => s === 502] : ['500', (s) => s === 500]),
    // nemo has sent its 200 by then and ends the stream with an error event; without it the client sees the cut.
    shape('cut mid-stream', 'cut-stream', streamBody(model('cut-stream'), 16), onNemo ? ok : ['cut (0)', (s) => s === 0]),
  ];
}

/**
 * agent: each loop its own conversations. The guarded keys are swapped for the agent keys (the same
 * policy with a token limit above the histories); direct and bare send them too, so bytes match.
 */
function agent(input: ScenarioInput): LoadScenario[] {
  const { target, tenants } = input;
  const keys = target.keys === tenants.guardedKeys ? tenants.agentKeys : target.keys;
  const model = modelFor('agent', target.freeModels);
  const perLoop = (loop: number, loops: number, headerSets: readonly string[][]) => conversations({ model, historyTokens: input.historyTokens, loop, loops, headerSets });
  return [{ ...single(input, 'agent', input.connections, { model, stream: true }, keys)[0]!, perLoop }];
}

export const SCENARIO_SPECS: Record<ScenarioName, ScenarioSpec> = {
  chat: {
    name: 'chat',
    description: 'non-stream, short prompt, max_tokens 16; requests spread over every org\'s key',
    stream: false,
    connections: 64,
    warmupS: 1,
    startSpreadMs: 0,
    drainTimeoutMs: 10_000,
    mix: (input) => single(input, 'chat', input.connections, chatBody(modelFor('chat', input.target.freeModels))),
  },
  'chat-hot': {
    name: 'chat-hot',
    description: 'as chat, but every request on one org\'s key: all holds on one ledger account',
    stream: false,
    connections: 64,
    warmupS: 1,
    startSpreadMs: 0,
    drainTimeoutMs: 10_000,
    mix: (input) => single(input, 'chat', input.connections, chatBody(modelFor('chat', input.target.freeModels)), input.target.keys.slice(0, 1)),
  },
  stream: {
    name: 'stream',
    description: '64 chunks 20 ms apart (~1.3 s) per stream, --streams concurrent streams, each loop opening the next when one ends',
    stream: true,
    connections: 0,
    warmupS: 2,
    // One stream's length: the streams then end (and reopen) evenly spread instead of in lockstep.
    startSpreadMs: 1280,
    drainTimeoutMs: 10_000,
    mix: (input) => single(input, 'stream', input.streams, streamBody(modelFor('stream', input.target.freeModels), 64)),
  },
  latency: {
    name: 'latency',
    description: 'as chat with one connection: the per-request overhead without queueing',
    stream: false,
    connections: 1,
    warmupS: 1,
    startSpreadMs: 0,
    drainTimeoutMs: 10_000,
    mix: (input) => single(input, 'chat', input.connections, chatBody(modelFor('chat', input.target.freeModels))),
  },
  'big-prompt': {
    name: 'big-prompt',
    description: '~20k-token prompts (~80 KB, 4 texts in turn), non-stream: token counting and guardrail scans',
    stream: false,
    // Each prompt costs the gateway ~100 ms of worker-thread CPU: 64 at once would measure a queue
    // longer than workers.taskTimeoutMs (and its 503s) rather than the cost of a prompt.
    connections: 8,
    warmupS: 1,
    startSpreadMs: 0,
    drainTimeoutMs: 20_000,
    mix: (input) => {
      const model = modelFor('chat', input.target.freeModels);
      const bodies = input.bigPrompts.map((prompt) => chatBody(model, prompt));
      return single(input, 'chat', input.connections, bodies[0], input.target.keys, bodies);
    },
  },
  mixed: {
    name: 'mixed',
    description: 'a production-like mix: chat, streams (some without usage), 402s, guardrail blocks, upstream 500s, cut streams',
    stream: false,
    connections: 64,
    warmupS: 1,
    startSpreadMs: 0,
    drainTimeoutMs: 10_000,
    mix: mixed,
  },
  agent: {
    name: 'agent',
    description: 'agent sessions: streamed, with tools; each request resends the history (up to ~100k tokens) plus a new turn of 200-2,000 tokens',
    stream: false,
    // A request carries up to ~400 KB that nemo scans and, past ~128 KB, counts on its worker
    // thread: as for big-prompt, 64 at once would measure that queue, not a request's cost.
    connections: 8,
    warmupS: 1,
    startSpreadMs: 0,
    drainTimeoutMs: 20_000,
    mix: agent,
  },
};
