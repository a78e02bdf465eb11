// Guardrails on a streamed answer: every generated text field of the OpenAI chunks (content,
// refusal, reasoning, tool-call arguments) goes through a StreamScanner of its own, and the chunk is
// rewritten with what the scanners release (text is held back only while a rule could still match
// across the chunk boundary). A block stops the stream; so does a chunk that cannot be read, since
// it could not be checked. Only streams of keys with output rules pay for this. The common chunk
// (one choice, only `content`) is read by a validating scan and its text spliced in place; any
// other is parsed and serialized again.
import { COMPLEX, NO_CHOICES, OpenAiChunkScan } from '../streaming/openai-chunk.js';
import type { CompiledPolicy } from './policy.js';
import { StreamScanner } from './stream-scanner.js';
import type { Finding } from './types.js';

interface ToolCallDelta {
  index?: number;
  function?: { arguments?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface Delta {
  content?: string | null;
  refusal?: string | null;
  reasoning_content?: string | null;
  tool_calls?: ToolCallDelta[];
  [k: string]: unknown;
}

interface Choice {
  index?: number;
  delta?: Delta;
  finish_reason?: string | null;
  [k: string]: unknown;
}

interface Chunk {
  choices?: Choice[];
  [k: string]: unknown;
}

/** The plain-text fields of a delta that carry generated text. */
const TEXT_FIELDS = ['content', 'refusal', 'reasoning_content'] as const;
type TextField = (typeof TEXT_FIELDS)[number];

/** Where a scanner's text goes: a text field of the delta, or a tool call's arguments. */
type Target = { readonly field: TextField } | { readonly tool: number };
const FIELD_TARGETS: Readonly<Record<TextField, Target>> = { content: { field: 'content' }, refusal: { field: 'refusal' }, reasoning_content: { field: 'reasoning_content' } };

const DATA_PREFIX = 'data: ';
const DONE = 'data: [DONE]';

export class StreamOutputGuard {
  /** Open scanners by choice index, then by `field` or `tool:<n>`; `every` keeps ended ones for their findings. */
  private readonly open = new Map<number, Map<string, { scanner: StreamScanner; target: Target }>>();
  private readonly every: StreamScanner[] = [];
  /** The last chunk's envelope (or its frame, parsed when needed), for a closing chunk that releases held text before [DONE]. */
  private template: Chunk | string | undefined;
  private readonly shape = new OpenAiChunkScan();
  /** What transform() sends, reused from chunk to chunk. */
  private readonly out: Array<string | Uint8Array> = [];
  private blockedBy: Finding | undefined;
  /** A chunk that could not be parsed: it was not sent, and the stream must end. */
  malformed = false;

  constructor(private readonly compiled: CompiledPolicy) {}

  get blocked(): Finding | undefined {
    return this.blockedBy;
  }

  /** Every finding so far, for guardrail events. */
  findings(): Finding[] {
    return this.every.flatMap((scanner) => [...scanner.findings]);
  }

  /**
   * Rewrites the frames of one upstream read (one or several chunks) in place. Returns false once
   * a block matched or a chunk could not be read: `frames` then holds only what may still go out
   * (nothing from the blocking frame on), and nothing more is sent.
   */
  transform(frames: Array<string | Uint8Array>): boolean {
    const only = frames.length === 1 ? frames[0] : undefined;
    if (typeof only === 'string' && only.charCodeAt(DATA_PREFIX.length) === 0x7b && only.startsWith(DATA_PREFIX) && !this.stopped) {
      // One upstream event's chunk, the common case: nothing to close, no array to rebuild.
      const rewritten = this.rewrite(only);
      if (rewritten === undefined) frames.length = 0;
      else frames[0] = rewritten;
      return !this.stopped;
    }
    const out = this.out;
    out.length = 0;
    for (let i = 0; i < frames.length; i++) {
      if (this.stopped) break;
      const frame = frames[i]!;
      const text = typeof frame === 'string' ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8');
      if (text.startsWith(DONE)) {
        this.closeAll(out);
        if (!this.stopped) out.push(frame);
        continue;
      }
      const rewritten = text.startsWith(DATA_PREFIX) ? this.rewrite(text) : text;
      if (rewritten !== undefined) out.push(rewritten);
    }
    frames.length = out.length;
    for (let i = 0; i < out.length; i++) frames[i] = out[i]!;
    out.length = 0;
    return !this.stopped;
  }

  private get stopped(): boolean {
    return this.blockedBy !== undefined || this.malformed;
  }

  /** The chunk with its text replaced by what may be released; undefined when nothing of it is left to send. */
  private rewrite(frame: string): string | undefined {
    // `data: {...}\n\n`, as the stream translators write it: scanned in place when its shape allows.
    if (frame.endsWith('}\n\n')) {
      const kind = this.shape.scan(frame, DATA_PREFIX.length, frame.length - 2);
      if (kind === NO_CHOICES) return frame;
      if (kind !== COMPLEX) return this.rewriteContent(frame);
    }
    return this.rewriteParsed(frame);
  }

  /** A chunk of one choice whose only text is `content` (the scan's SIMPLE): its text spliced in place. */
  private rewriteContent(frame: string): string | undefined {
    const shape = this.shape;
    this.template = frame;
    if (shape.contentStart === -1) return frame;
    const { contentStart, contentEnd } = shape;
    const text = shape.contentEscaped ? (JSON.parse(frame.slice(contentStart, contentEnd)) as string) : frame.slice(contentStart + 1, contentEnd - 1);
    const step = this.scanner(shape.index, 'content', FIELD_TARGETS.content).push(text);
    if (step.blocked !== undefined) {
      const chunk = parseFrame(frame);
      const choice = chunk.choices![0]!;
      choice.delta!.content = step.release;
      return this.block(step.blocked, chunk, choice);
    }
    if (step.release === text) return frame;
    // `data: ` and the blank line around the JSON, as rewrite() checked: the template's framing.
    if (step.release === '' && shape.templateMatched) return shape.emptyContentFrame(DATA_PREFIX, '\n\n');
    return `${frame.slice(0, contentStart)}${JSON.stringify(step.release)}${frame.slice(contentEnd)}`;
  }

  private rewriteParsed(frame: string): string | undefined {
    let chunk: Chunk;
    try {
      chunk = JSON.parse(frame.slice(DATA_PREFIX.length).trimEnd()) as Chunk;
    } catch {
      this.malformed = true;
      return undefined;
    }
    if (!Array.isArray(chunk.choices) || chunk.choices.length === 0) return frame;
    this.template = chunk;
    for (const choice of chunk.choices) {
      const index = choice.index ?? 0;
      const delta: Delta = choice.delta ?? {};
      for (const field of TEXT_FIELDS) {
        const value = delta[field];
        if (typeof value !== 'string') continue;
        const step = this.scanner(index, field, FIELD_TARGETS[field]).push(value);
        delta[field] = step.release;
        if (step.blocked !== undefined) return this.block(step.blocked, chunk, choice);
      }
      for (const call of delta.tool_calls ?? []) {
        const args = call.function?.arguments;
        if (typeof args !== 'string') continue;
        const tool = call.index ?? 0;
        const step = this.scanner(index, `tool:${tool}`, { tool }).push(args);
        call.function!.arguments = step.release;
        if (step.blocked !== undefined) return this.block(step.blocked, chunk, choice);
      }
      if (choice.finish_reason != null) {
        this.closeChoice(index, delta);
        if (this.stopped) return this.block(this.blockedBy!, chunk, choice);
      }
      choice.delta = delta;
    }
    return `${DATA_PREFIX}${JSON.stringify(chunk)}\n\n`;
  }

  /** A block: what was safe before the match still goes out (this chunk, without its finish_reason). */
  private block(finding: Finding, chunk: Chunk, choice: Choice): string | undefined {
    this.blockedBy ??= finding;
    const delta = choice.delta ?? {};
    const hasText = TEXT_FIELDS.some((f) => typeof delta[f] === 'string' && delta[f] !== '') || (delta.tool_calls ?? []).some((c) => (c.function?.arguments ?? '') !== '');
    if (!hasText) return undefined;
    return `${DATA_PREFIX}${JSON.stringify({ ...chunk, choices: [{ ...choice, delta, finish_reason: null }] })}\n\n`;
  }

  /** Ends a choice's scanners, appending what they still held to its delta. */
  private closeChoice(index: number, delta: Delta): void {
    const scanners = this.open.get(index);
    if (scanners === undefined) return;
    this.open.delete(index);
    for (const { scanner, target } of scanners.values()) {
      const last = scanner.end();
      if (last.blocked !== undefined) {
        this.blockedBy ??= last.blocked;
        return;
      }
      if (last.release === '') continue;
      if ('field' in target) {
        delta[target.field] = `${delta[target.field] ?? ''}${last.release}`;
      } else {
        const calls = (delta.tool_calls ??= []);
        let call = calls.find((c) => (c.index ?? 0) === target.tool);
        if (call === undefined) calls.push((call = { index: target.tool, function: { arguments: '' } }));
        call.function ??= {};
        call.function.arguments = `${call.function.arguments ?? ''}${last.release}`;
      }
    }
  }

  /** Before [DONE]: text still held for choices that never sent a finish_reason. */
  private closeAll(out: Array<string | Uint8Array>): void {
    for (const index of [...this.open.keys()]) {
      const delta: Delta = {};
      this.closeChoice(index, delta);
      if (this.stopped) return;
      if (Object.keys(delta).length > 0 && this.template !== undefined) {
        const template = typeof this.template === 'string' ? parseFrame(this.template) : this.template;
        out.push(`${DATA_PREFIX}${JSON.stringify({ ...template, choices: [{ index, delta, finish_reason: null }] })}\n\n`);
      }
    }
  }

  private scanner(index: number, key: string, target: Target): StreamScanner {
    let scanners = this.open.get(index);
    if (scanners === undefined) this.open.set(index, (scanners = new Map()));
    let entry = scanners.get(key);
    if (entry === undefined) {
      entry = { scanner: new StreamScanner(this.compiled), target };
      scanners.set(key, entry);
      this.every.push(entry.scanner);
    }
    return entry.scanner;
  }
}

/** A frame the chunk scan found valid, as an object. */
function parseFrame(frame: string): Chunk {
  return JSON.parse(frame.slice(DATA_PREFIX.length).trimEnd()) as Chunk;
}
