// Results of the pool's pure jobs (token counts, guardrail verdicts) by a SHA-256 of their input,
// so a conversation resent with one more turn is counted and scanned only for its new messages.
// Derived data, in this process only: losing an entry costs a recount, never a fact. Bounded by
// an estimate of the bytes held, the least recently used entry out first.
import { hash } from 'node:crypto';

/** The content half of a key: SHA-256, so no text can be crafted to take another's verdict. */
export function contentKey(text: string): string {
  return hash('sha256', text, 'base64');
}

/**
 * The content keys of one request's scanned texts, for its token count: the count meets the same
 * strings in the same order (content, then tool call arguments, message by message), so each is
 * matched against the next scanned text, not looked up by content (a Map keyed by 200 KB of text
 * costs V8 a hash of every character, more than the second SHA-256 it saves). A text not met in
 * order is hashed again.
 */
export class ContentKeys {
  private readonly texts: string[] = [];
  private readonly keys: string[] = [];
  private next = 0;

  /** The key of a text being scanned, remembered for the count. */
  scanned(text: string): string {
    const key = contentKey(text);
    this.texts.push(text);
    this.keys.push(key);
    return key;
  }

  /**
   * A scanned text was replaced by its redacted form: the count will meet that instead. The
   * redacted form is a function of the original and the policy (`policyKey`, a hash of it), so its
   * key is derived from theirs rather than hashed: an agent's history redacted anew each turn
   * would otherwise be hashed twice. `~` is not base64: no derived key equals a content key.
   */
  redacted(original: string, replacement: string, policyKey: string): void {
    const i = this.texts.indexOf(original);
    if (i < 0) return;
    this.texts[i] = replacement;
    this.keys[i] = `${this.keys[i]}~${policyKey}`;
  }

  of(text: string): string {
    const i = this.next;
    if (i < this.texts.length && this.texts[i] === text) {
      this.next = i + 1;
      return this.keys[i]!;
    }
    return contentKey(text);
  }
}

/** What a Map entry with a short string key costs besides its value, roughly (V8, 64-bit). */
const ENTRY_OVERHEAD_BYTES = 96;

export class ResultCache<V> {
  private readonly entries = new Map<string, { readonly value: V; readonly bytes: number; used: number }>();
  /** Counts moves to the newest end: an entry moved fewer than size/2 moves ago is in the newer half already. */
  private moves = 0;
  /** Jobs under way, so concurrent requests with the same text wait for one job instead of each running it. */
  private readonly running = new Map<string, Promise<V>>();
  private heldBytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    private readonly maxBytes: number,
    /** Bytes a value holds beyond the entry itself (a redacted text, findings). */
    private readonly valueBytes: (value: V) => number,
  ) {}

  get bytes(): number {
    return this.heldBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached value (or the job under way) for `key`, else `compute`'s, which is kept. */
  getOrCompute(key: string, compute: () => V | Promise<V>): V | Promise<V> {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.hits++;
      // Most recently used last: Map keeps insertion order, so the first key is the one to evict. An
      // entry still in the newer half stays where it is: a resent conversation hits ~100 entries a
      // request, and re-inserting each costs two hash lookups.
      if (this.moves - entry.used > this.entries.size >> 1) {
        this.entries.delete(key);
        this.entries.set(key, entry);
        entry.used = ++this.moves;
      }
      return entry.value;
    }
    const running = this.running.get(key);
    if (running !== undefined) {
      this.hits++;
      return running;
    }
    this.misses++;
    const result = compute();
    if (!(result instanceof Promise)) {
      this.set(key, result);
      return result;
    }
    const settled = result.then(
      (value) => {
        this.running.delete(key);
        this.set(key, value);
        return value;
      },
      (err: unknown) => {
        // A failed job (a worker timeout) is not a verdict: the next request runs it again.
        this.running.delete(key);
        throw err;
      },
    );
    this.running.set(key, settled);
    return settled;
  }

  clear(): void {
    this.entries.clear();
    this.heldBytes = 0;
  }

  private set(key: string, value: V): void {
    if (this.maxBytes === 0) return;
    const bytes = ENTRY_OVERHEAD_BYTES + 2 * key.length + this.valueBytes(value);
    if (bytes > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.heldBytes -= old.bytes;
      this.entries.delete(key);
    }
    this.entries.set(key, { value, bytes, used: ++this.moves });
    this.heldBytes += bytes;
    for (const [oldest, evicted] of this.entries) {
      if (this.heldBytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.heldBytes -= evicted.bytes;
    }
  }
}
