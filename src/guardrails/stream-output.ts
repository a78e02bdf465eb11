// Guardrails on a streamed answer: every content delta of the OpenAI chunks goes through a
// StreamScanner per choice, and the chunk is rewritten with what the scanner releases (text is held
// back only while a rule could still match across the chunk boundary). A block stops the stream.
// Only streams of keys with output rules pay for this (a parse and a stringify per chunk).
import type { CompiledPolicy } from './policy.js';
import { StreamScanner } from './stream-scanner.js';
import type { Finding } from './types.js';

interface Chunk {
  id?: string;
  object?: string;
  created?: number;
  model?: string;
  choices?: Array<{ index?: number; delta?: { content?: string | null }; finish_reason?: string | null }>;
}

const DATA_PREFIX = 'data: ';
const DONE = 'data: [DONE]';

export class StreamOutputGuard {
  /** Open scanners by choice index; `every` keeps the ended ones too, for their findings. */
  private readonly scanners = new Map<number, StreamScanner>();
  private readonly every: StreamScanner[] = [];
  /** The last chunk's envelope, for a closing chunk that releases held text before [DONE]. */
  private template: Chunk | undefined;
  private blockedBy: Finding | undefined;

  constructor(private readonly compiled: CompiledPolicy) {}

  get blocked(): Finding | undefined {
    return this.blockedBy;
  }

  /** Every finding so far, for guardrail events. */
  findings(): Finding[] {
    return this.every.flatMap((scanner) => [...scanner.findings]);
  }

  /**
   * Rewrites one upstream chunk's frames in place. Returns false once a block matched: `frames`
   * then holds only what may still go out, and nothing more must be sent.
   */
  transform(frames: Array<string | Uint8Array>): boolean {
    const out: Array<string | Uint8Array> = [];
    for (const frame of frames) {
      if (this.blockedBy !== undefined) break;
      const text = typeof frame === 'string' ? frame : Buffer.from(frame).toString('utf8');
      if (text.startsWith(DONE)) {
        this.closeOpenChoices(out);
        if (this.blockedBy === undefined) out.push(frame);
        continue;
      }
      const rewritten = text.startsWith(DATA_PREFIX) ? this.rewrite(text) : text;
      if (rewritten !== undefined) out.push(rewritten);
    }
    frames.length = 0;
    frames.push(...out);
    return this.blockedBy === undefined;
  }

  /** The chunk with its content deltas replaced by what may be released; undefined when nothing of it is left. */
  private rewrite(frame: string): string | undefined {
    let chunk: Chunk;
    try {
      chunk = JSON.parse(frame.slice(DATA_PREFIX.length).trimEnd()) as Chunk;
    } catch {
      return frame; // not a chunk (the translators only emit chunks; relayed as is)
    }
    if (!Array.isArray(chunk.choices) || chunk.choices.length === 0) return frame;
    this.template = chunk;
    let changed = false;
    for (const choice of chunk.choices) {
      const content = choice.delta?.content;
      const ends = choice.finish_reason != null;
      if (typeof content !== 'string' && !ends) continue;
      const scanner = this.scannerFor(choice.index ?? 0);
      let release = '';
      if (typeof content === 'string') {
        const step = scanner.push(content);
        release = step.release;
        if (step.blocked !== undefined) return this.block(step.blocked, chunk, choice, release);
      }
      if (ends) {
        this.scanners.delete(choice.index ?? 0);
        const last = scanner.end();
        release += last.release;
        if (last.blocked !== undefined) return this.block(last.blocked, chunk, choice, release);
      }
      if (typeof content === 'string' || release !== '') {
        choice.delta = { ...choice.delta, content: release };
        changed = true;
      }
    }
    return changed ? `${DATA_PREFIX}${JSON.stringify(chunk)}\n\n` : frame;
  }

  private block(finding: Finding, chunk: Chunk, choice: NonNullable<Chunk['choices']>[number], release: string): string | undefined {
    this.blockedBy = finding;
    if (release === '') return undefined;
    // What was safe before the match still goes out, alone.
    return `${DATA_PREFIX}${JSON.stringify({ ...chunk, choices: [{ ...choice, delta: { content: release }, finish_reason: null }] })}\n\n`;
  }

  /** Before [DONE]: text still held for choices that never sent a finish_reason. */
  private closeOpenChoices(out: Array<string | Uint8Array>): void {
    for (const [index, scanner] of this.scanners) {
      this.scanners.delete(index);
      const last = scanner.end();
      if (last.blocked !== undefined) {
        this.blockedBy = last.blocked;
        return;
      }
      if (last.release !== '' && this.template !== undefined) {
        out.push(`${DATA_PREFIX}${JSON.stringify({ ...this.template, choices: [{ index, delta: { content: last.release }, finish_reason: null }] })}\n\n`);
      }
    }
  }

  private scannerFor(index: number): StreamScanner {
    let scanner = this.scanners.get(index);
    if (scanner === undefined) {
      scanner = new StreamScanner(this.compiled);
      this.scanners.set(index, scanner);
      this.every.push(scanner);
    }
    return scanner;
  }
}
