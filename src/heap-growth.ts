// How far V8 lets the old generation grow past what the last full collection found live. V8 picks
// the factor itself from how fast it collects against how fast the program allocates, up to 4x. A
// gateway's live heap is small and steady, but every stream's objects live long enough to be
// promoted, so under load that factor fills the old space with dead objects between collections
// (bench, 1,000 open streams: peak RSS 230-240 MB, against 160-175 MB at 1.3-1.6x). A fixed small
// factor costs a few more mark-compacts (marked concurrently) and keeps that memory out of the RSS.
import v8 from 'node:v8';

/** The V8 flag for `percent` (the old generation may grow to live x (1 + percent / 100)); 0: V8 decides. */
export function heapGrowingFlag(percent: number): string | undefined {
  if (!Number.isInteger(percent) || percent < 0) throw new RangeError(`heap growing percent must be a non-negative integer, got ${percent}`);
  return percent === 0 ? undefined : `--heap-growing-percent=${percent}`;
}

/**
 * Applies `server.heapGrowingPercent` to this process (its worker threads included: V8 flags are
 * per process). V8 reads the flag at every limit it computes, so setting it at start takes effect
 * from the first full collection on, and it replaces the factor of every mode V8 picks (also the
 * smaller ones it uses when idle or near the heap limit; the limit itself still holds). 0 leaves
 * V8's own choice, or a `--heap-growing-percent` given to node on the command line.
 */
export function applyHeapGrowth(percent: number): void {
  const flag = heapGrowingFlag(percent);
  if (flag !== undefined) v8.setFlagsFromString(flag);
}
