// What NemoRouter's derived work did during one scenario, from the counters of its own /metrics
// read before and after: how many texts the result caches answered (not counted or scanned again),
// how many elements of large bodies were reused from an earlier body,
// how often a max_input_tokens check was decided by the byte bound alone, and the jobs that ran
// inline or in the pool. Counted over every target the nemo process served in the scenario
// (nemo, and with --ablation nemo-free and nemo-plain).

export interface NemoWork {
  tokenCounts: CacheWork;
  scanVerdicts: CacheWork;
  /** Messages and tools of large chat bodies reused from an earlier body of the org (not parsed, scanned or counted again). */
  bodyElements: CacheWork;
  /** max_input_tokens checks: decided by the UTF-8 byte bound (nothing counted) or an exact count. */
  inputLimitChecks: { byteBound: number; exactCount: number };
  /** Jobs run, by task and where (`count_tokens/pool`, `scan/inline`, ...); cache hits run none. */
  jobs: Record<string, number>;
}

export interface CacheWork {
  hits: number;
  misses: number;
  /** hits / (hits + misses), 0 when none. */
  hitRatio: number;
}

type Counters = Map<string, number>;

/** Every sample of the counters read here, by `name{labels}` as exposed. */
export async function readNemoCounters(origin: string): Promise<Counters> {
  const response = await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${origin}/metrics: ${response.status}`);
  const counters: Counters = new Map();
  for (const line of text.split('\n')) {
    if (!/^nemo_(worker_cache_lookups_total|input_token_limit_checks_total|worker_jobs_total)\{/.test(line)) continue;
    const space = line.lastIndexOf(' ');
    counters.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return counters;
}

export function workBetween(before: Counters, after: Counters): NemoWork {
  const delta = (series: string): number => (after.get(series) ?? 0) - (before.get(series) ?? 0);
  const cache = (name: string): CacheWork => {
    const hits = delta(`nemo_worker_cache_lookups_total{cache="${name}",result="hit"}`);
    const misses = delta(`nemo_worker_cache_lookups_total{cache="${name}",result="miss"}`);
    return { hits, misses, hitRatio: hits + misses === 0 ? 0 : Number((hits / (hits + misses)).toFixed(3)) };
  };
  const jobs: Record<string, number> = {};
  for (const series of after.keys()) {
    const m = /^nemo_worker_jobs_total\{task="(\w+)",where="(\w+)"\}$/.exec(series);
    if (m !== null) jobs[`${m[1]}/${m[2]}`] = delta(series);
  }
  return {
    tokenCounts: cache('token_counts'),
    scanVerdicts: cache('scan_verdicts'),
    bodyElements: cache('body_elements'),
    inputLimitChecks: {
      byteBound: delta('nemo_input_token_limit_checks_total{decided_by="byte_bound"}'),
      exactCount: delta('nemo_input_token_limit_checks_total{decided_by="exact_count"}'),
    },
    jobs,
  };
}

export function nemoWorkLine(work: NemoWork): string {
  const pct = (part: number, whole: number): string => (whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)} %`);
  const cache = (c: CacheWork): string => `${pct(c.hits, c.hits + c.misses)} of ${c.hits + c.misses}`;
  const checks = work.inputLimitChecks.byteBound + work.inputLimitChecks.exactCount;
  const jobs = Object.entries(work.jobs).map(([job, n]) => `${job} ${n}`).join(', ');
  return `nemo work: large bodies' elements reused ${cache(work.bodyElements)}; texts answered from cache: token counts ${cache(work.tokenCounts)}, scan verdicts ${cache(work.scanVerdicts)}; max_input_tokens decided by the byte bound in ${pct(work.inputLimitChecks.byteBound, checks)} of ${checks} checks; jobs run: ${jobs || 'none'}`;
}
