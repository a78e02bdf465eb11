// The agent scenario's requests: sessions of growing conversations, as a coding agent sends them.
// A session opens with a system prompt and four function tools (the same in every request), then
// each request resends the whole history plus one new turn of 200 to 2,000 tokens (a user message
// and a tool result in turn), until the history would pass its cap and the lane's next session
// starts; each loop carries eight lanes in turn. Seeded per lane and session, and the answers
// written into the history are what the mock answers (its text) or a stand-in of the same size (its
// tool call), so every target gets the same bytes, however fast it answered.
import { mockCompletionText } from '../../src/providers/mock/generate.js';
import type { NextRequest } from './closed-loop.js';
import { seededRandom, textOfChars } from './prompt-text.js';

export const AGENT_HISTORY_TOKENS = 100_000;
export const AGENT_TURN_TOKENS = { min: 200, max: 2_000 } as const;
export const AGENT_MAX_TOKENS = 64;
/** The sessions each loop carries in turn, by where in a session's length each starts (see conversations()). */
const LANE_ORDER = [0, 4, 2, 6, 1, 5, 3, 7] as const;
/** Estimates here are characters / 4: the seeded prompt text runs at about that in o200k_base. */
const CHARS_PER_TOKEN = 4;
/** What a message's envelope (role, separators) adds to its text. */
const MESSAGE_TOKENS = 4;

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'read_file',
      description: 'Read a file of the repository, optionally only a range of lines. Returns the text with line numbers.',
      parameters: {
        type: 'object',
        properties: {
          path: { type: 'string', description: 'Path relative to the repository root.' },
          start_line: { type: 'integer', minimum: 1 },
          end_line: { type: 'integer', minimum: 1 },
        },
        required: ['path'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'search_code',
      description: 'Search the repository for a regular expression and return matching lines with their paths.',
      parameters: {
        type: 'object',
        properties: {
          pattern: { type: 'string' },
          path_glob: { type: 'string', description: 'Only files matching this glob, e.g. src/**/*.ts.' },
          max_results: { type: 'integer', minimum: 1, maximum: 200 },
        },
        required: ['pattern'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'run_command',
      description: 'Run a shell command in the workspace (tests, builds, git) and return its exit code, stdout and stderr.',
      parameters: {
        type: 'object',
        properties: {
          command: { type: 'string' },
          timeout_ms: { type: 'integer', minimum: 100, maximum: 600000 },
        },
        required: ['command'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'apply_patch',
      description: 'Apply a unified diff to the workspace. Fails without changing anything when a hunk does not apply.',
      parameters: {
        type: 'object',
        properties: { patch: { type: 'string', description: 'A unified diff, paths relative to the repository root.' } },
        required: ['patch'],
      },
    },
  },
] as const;

const SYSTEM_PROMPT = [
  'You are a coding agent working in a TypeScript repository on behalf of the user. Use the tools to read files, search the code, run commands and apply patches; ',
  'read before you edit, keep changes small, run the tests after each change, and say what you changed and why. Never print secrets you come across.\n\n',
  textOfChars(4_242, 5_600),
].join('');

/** The mock calls the first tool when the last message is the user's, and answers text after a tool result. */
const TOOL_CALLED = TOOLS[0].function.name;
const ANSWER_TEXT = mockCompletionText(AGENT_MAX_TOKENS);
const TAIL = Buffer.from(']}');
const FILES = ['http/chat/admission', 'http/chat/settlement', 'ledger/leases', 'guardrails/policy', 'tokens/count', 'workers/pool', 'streaming/sse-parser', 'config/schema'];

/**
 * The log lines' hex request ids now and then hold 13 digits in a row that pass Luhn, which the
 * guarded keys block as a card number, and a blocked turn would refuse the rest of its session.
 * Every seventh digit of such a run becomes a hex letter: the same length, no card left.
 */
const withoutCardNumbers = (text: string): string => text.replace(/\d{13,}/g, (run) => run.replace(/(\d{6})\d/g, '$1f'));

const tokensOf = (chars: number): number => Math.ceil(chars / CHARS_PER_TOKEN) + MESSAGE_TOKENS;
const json = (message: unknown, first: boolean): Buffer => Buffer.from(`${first ? '' : ','}${JSON.stringify(message)}`);

/** A 32-bit seed per lane and session: no two sessions share a conversation. */
const seedOf = (lane: number, session: number): number => (Math.imul(lane + 1, 0x9e3779b1) ^ Math.imul(session + 1, 0x85ebca6b)) >>> 0;

/** The request's fields but its messages, serialized up to the messages' opening bracket. */
function headOf(model: string): Buffer {
  const request = { model, max_tokens: AGENT_MAX_TOKENS, stream: true, stream_options: { include_usage: true }, tools: TOOLS, messages: [] };
  const text = JSON.stringify(request);
  return Buffer.from(text.slice(0, -2));
}

export interface ConversationOptions {
  model: string;
  /** A session ends before a new turn would take its history past this (estimated tokens). */
  historyTokens: number;
  loop: number;
  loops: number;
  /** Flattened header sets (one per org's key); each session takes one. */
  headerSets: readonly string[][];
}

interface LaneOptions extends ConversationOptions {
  /** This lane among all loops' lanes: it sets the seeds, the first history size and the keys. */
  lane: number;
  lanes: number;
}

/** One lane of sessions, one after another. Each `next` is the next request; its answer is then already in the history. */
class Lane {
  private readonly head: Buffer;
  /** head, then the messages, each serialized once (with its leading comma). */
  private readonly parts: Buffer[] = [];
  private bytes = 0;
  private tokens = 0;
  private session = -1;
  private turn = 0;
  private random!: () => number;
  headers: string[] = [];

  constructor(private readonly options: LaneOptions) {
    this.head = headOf(options.model);
    this.startSession();
    // Lanes start spread over a session's length, so every window's requests span every history
    // size rather than all starting small; within its first session, never past it.
    const startAt = (options.historyTokens * options.lane) / options.lanes;
    while (this.tokens < startAt && this.session === 0) {
      this.addTurn();
      this.addAnswer();
    }
  }

  next(): Buffer {
    this.addTurn();
    this.parts.push(TAIL);
    const body = Buffer.concat(this.parts, this.bytes + TAIL.length);
    this.parts.pop();
    this.addAnswer();
    return body;
  }

  private startSession(): void {
    const { lane, lanes, headerSets } = this.options;
    this.session++;
    this.turn = 0;
    this.random = seededRandom(seedOf(lane, this.session));
    this.headers = headerSets[(lane + this.session * lanes) % headerSets.length]!;
    this.parts.length = 0;
    this.bytes = 0;
    this.tokens = 0;
    this.push(this.head, tokensOf(this.head.length));
    this.push(json({ role: 'system', content: SYSTEM_PROMPT }, true), tokensOf(SYSTEM_PROMPT.length));
  }

  private push(part: Buffer, tokens: number): void {
    this.parts.push(part);
    this.bytes += part.length;
    this.tokens += tokens;
  }

  /** The new turn: the user's message, or the result of the tool the last answer called; a new session when it would not fit. */
  private addTurn(): void {
    let turnTokens = this.turnTokens();
    if (this.turn > 0 && this.tokens + turnTokens > this.options.historyTokens) {
      this.startSession();
      turnTokens = this.turnTokens();
    }
    const text = withoutCardNumbers(textOfChars(Math.floor(this.random() * 2 ** 31), turnTokens * CHARS_PER_TOKEN));
    const message = this.turn % 2 === 0 ? { role: 'user', content: text } : { role: 'tool', tool_call_id: this.callId(this.turn - 1), content: text };
    this.push(json(message, false), tokensOf(text.length));
  }

  /** What the mock answers the turn: a call of the first tool after the user, text after a tool result. */
  private addAnswer(): void {
    if (this.turn % 2 === 0) {
      const path = `src/${FILES[Math.floor(this.random() * FILES.length)]!}.ts`;
      const args = JSON.stringify({ path, start_line: 1 + Math.floor(this.random() * 400) });
      const call = { id: this.callId(this.turn), type: 'function', function: { name: TOOL_CALLED, arguments: args } };
      this.push(json({ role: 'assistant', content: null, tool_calls: [call] }, false), tokensOf(args.length));
    } else this.push(json({ role: 'assistant', content: ANSWER_TEXT }, false), tokensOf(ANSWER_TEXT.length));
    this.turn++;
  }

  private turnTokens(): number {
    const { min, max } = AGENT_TURN_TOKENS;
    return min + Math.floor(this.random() * (max - min + 1));
  }

  private callId(turn: number): string {
    return `call_${this.options.lane}_${this.session}_${turn}`;
  }
}

/**
 * Loop `loop`'s requests: its lanes in turn, as an agent service's worker sends its users'
 * sessions over one pooled connection. Loop i's lanes start at histories k/8 + i/(8 loops) of the
 * cap, taken in bit-reversed k order (0, 4, 2, 6, 1, ...), so a loop's first few requests
 * already span every history size and a slow target is sent the same mix of sizes as a fast one
 * (with one session per loop, the loops with small histories would be answered, and counted, more
 * often). The same sequence for every target.
 */
export function conversations(options: ConversationOptions): NextRequest {
  const lanes = LANE_ORDER.map((k) => new Lane({ ...options, lane: k * options.loops + options.loop, lanes: LANE_ORDER.length * options.loops }));
  let turn = 0;
  return () => {
    const lane = lanes[turn++ % lanes.length]!;
    const body = lane.next();
    return { headers: lane.headers, body };
  };
}
