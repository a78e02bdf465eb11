// Turns measured windows into the numbers a run is judged and compared by: one result per target
// (medians over rounds), the ratios against the baselines measured in the same run, and for streams
// a section of their own. The JSON written with --json is exactly these objects.
import type { GroupResult } from './closed-loop.js';
import type { EventLoopLag } from './event-loop-lag.js';
import type { KneeResult } from './knee.js';
import type { LedgerSummary } from './ledger-audit.js';
import type { NemoWork } from './nemo-work.js';
import type { WindowResult } from './measure.js';
import type { ScenarioResult } from './mixed-load.js';
import { Samples } from './samples.js';
import type { ServerRuntime } from './server-runtime.js';

export interface StreamStats {
  /** Stream loops held open at once. */
  concurrent: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  gapP50Ms: number;
  gapP99Ms: number;
  gapMaxMs: number;
  /** Silent for over a second, or did not end with [DONE] (sum of the next two, streams counted once). */
  stalled: number;
  silent: number;
  incomplete: number;
  eventsPerStream: number;
}

export interface TargetResult {
  /** Answers completed within the measured seconds, per second (streams: whole streams). */
  rps: number;
  /** Time to the last byte of 2xx answers. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  /** Mean request body, KB (1,000 bytes), over the requests sent. */
  meanRequestKb: number;
  ok: number;
  non2xx: number;
  /** Requests that got no HTTP answer: connection errors, cut bodies, and `unfinished`. */
  errors: number;
  /** Still running at the drain deadline and cut by the load generator. */
  unfinished: number;
  byStatus: Record<string, number>;
  /** CPU seconds of the serving process (all threads) per 1,000 requests. */
  cpuSPer1k?: number;
  cpuS?: number;
  peakRssMb?: number;
  /** How late the serving process's event loop ran, p99 and max (sampling interval subtracted). */
  eventLoopLagP99Ms?: number;
  eventLoopLagMaxMs?: number;
  /** The embedded Postgres's CPU seconds per 1,000 requests (nemo targets). */
  dbCpuSPer1k?: number;
  /** The load generator's own CPU and lag: when they are high, it was the bottleneck. */
  loadGenCpuS: number;
  loadGenLagP99Ms?: number;
  stream?: StreamStats;
}

export interface Ratios {
  nemoOverBareRps: number;
  nemoOverDirectRps: number;
  bareOverDirectRps: number;
  /** nemo minus direct: what a client sees from going through the gateway. */
  addedP50Ms: number;
  addedP99Ms: number;
  bareAddedP99Ms: number;
  nemoOverBareCpuPer1k?: number;
  /** --ablation only: the ledger's and the guardrails' shares. */
  nemoPlainOverNemoFreeRps?: number;
  ledgerAddedP99Ms?: number;
  nemoOverNemoPlainRps?: number;
  guardrailsAddedP99Ms?: number;
  /** --fallback only: the gateway on Node's http module (nemo-node) against nemo in the same run. */
  nemoNodeOverNemoRps?: number;
  nemoNodeOverNemoP99?: number;
  nemoNodeOverNemoP50?: number;
  nemoNodeOverNemoCpuPer1k?: number;
  nemoNodeOverBareRps?: number;
  /** --baseline only: this checkout's nemo against the baseline checkout's (nemo-base), rounds interleaved. */
  nemoOverBaseRps?: number;
  nemoOverBaseP99?: number;
  nemoOverBaseCpuPer1k?: number;
}

export interface StreamSection {
  concurrent: number;
  gapP99Ms: number;
  bareGapP99Ms: number;
  directGapP99Ms: number;
  /** nemo's gap p99 minus bare's. */
  addedGapP99Ms: number;
  ttftP99Ms: number;
  bareTtftP99Ms: number;
  stalled: number;
  bareStalled: number;
  directStalled: number;
  /** --fallback only: nemo-node's gap p99 and stalled streams. */
  nemoNodeGapP99Ms?: number;
  nemoNodeStalled?: number;
  /** --baseline only: nemo-base's gap p99 and stalled streams. */
  nemoBaseGapP99Ms?: number;
  nemoBaseStalled?: number;
  knee?: KneeResult;
}

export interface AgentTarget {
  rps: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  /** CPU of the serving process (all threads) per request, ms: cpuSPer1k read per request. */
  cpuMsPerRequest: number | undefined;
  meanRequestKb: number;
  /** Streams silent over a second (the first token included) or not ended with [DONE]. */
  stalled: number;
}

/** What the agent scenario sent: its conversations' shape. */
export interface AgentShape {
  /** Conversations (loops) at once. */
  conversations: number;
  historyTokens: number;
  turnTokens: { min: number; max: number };
  maxTokens: number;
}

export interface AgentSection extends AgentShape {
  targets: Record<string, AgentTarget>;
  nemoOverBareRps: number;
  nemoOverBareTtftP50: number;
  nemoOverBareTtftP99: number;
  nemoOverBareCpuPerRequest?: number;
}

export interface ScenarioReport {
  scenario: string;
  description: string;
  settings: Record<string, unknown>;
  /** Per target but the mock: the Node version and HTTP server its process reported at start. */
  runtimes: Record<string, ServerRuntime>;
  targets: Record<string, TargetResult>;
  ratios: Ratios;
  streams?: StreamSection;
  /** agent: TTFT, CPU per request and request sizes per target. */
  agent?: AgentSection;
  /** mixed: answers by status per request shape, and whether each shape got what it exists for. */
  mix?: Record<string, ScenarioResult[]>;
  ledger?: LedgerSummary;
  /** What the nemo process's caches and input checks did over the scenario (all its targets). */
  nemoWork?: NemoWork;
  rounds: Array<Record<string, TargetResult>>;
}

const round3 = (value: number): number => Number(value.toFixed(3));
const ratio = (a: number, b: number): number => (b > 0 ? round3(a / b) : 0);

function mergeStatus(into: Record<string, number>, from: Record<string, number>): void {
  for (const [status, n] of Object.entries(from)) into[status] = (into[status] ?? 0) + n;
}

function streamStats(groups: GroupResult[], concurrent: number): StreamStats | undefined {
  const streams = groups.filter((g) => g.stream);
  if (streams.length === 0) return undefined;
  const ttft = new Samples();
  const gaps = new Samples();
  let stalled = 0;
  let silent = 0;
  let incomplete = 0;
  let events = 0;
  let ok = 0;
  for (const g of streams) {
    ttft.addAll(g.ttftMs);
    gaps.addAll(g.gapMs);
    stalled += g.stalled;
    silent += g.silent;
    incomplete += g.incomplete;
    events += g.events;
    ok += g.ok;
  }
  const t = ttft.percentiles();
  const gp = gaps.percentiles();
  return {
    concurrent,
    ttftP50Ms: round3(t.p50),
    ttftP99Ms: round3(t.p99),
    gapP50Ms: round3(gp.p50),
    gapP99Ms: round3(gp.p99),
    gapMaxMs: round3(gp.max),
    stalled,
    silent,
    incomplete,
    eventsPerStream: ok > 0 ? Number((events / ok).toFixed(1)) : 0,
  };
}

/** One window's numbers; `streamConcurrency` is the number of stream loops (for the record). */
export function targetResult(window: WindowResult, streamConcurrency: number): TargetResult {
  const latency = new Samples();
  const byStatus: Record<string, number> = {};
  let requests = 0;
  let bodyBytes = 0;
  let inWindow = 0;
  let ok = 0;
  let errors = 0;
  let unfinished = 0;
  for (const g of window.groups) {
    latency.addAll(g.latencyMs);
    mergeStatus(byStatus, g.byStatus);
    requests += g.requests;
    bodyBytes += g.bodyBytes;
    inWindow += g.completedInWindow;
    ok += g.ok;
    errors += g.errors + g.unfinished;
    unfinished += g.unfinished;
  }
  const p = latency.percentiles();
  const answered = requests - errors;
  const result: TargetResult = {
    rps: Number((inWindow / window.durationS).toFixed(1)),
    p50Ms: round3(p.p50),
    p90Ms: round3(p.p90),
    p99Ms: round3(p.p99),
    maxMs: round3(p.max),
    requests,
    meanRequestKb: requests > 0 ? round3(bodyBytes / requests / 1000) : 0,
    ok,
    non2xx: answered - ok,
    errors,
    unfinished,
    byStatus,
    loadGenCpuS: window.loadGen.cpuS,
  };
  const per1k = (cpuS: number | undefined): number | undefined => (cpuS === undefined || requests === 0 ? undefined : Number(((cpuS * 1000) / requests).toFixed(4)));
  if (window.cpuS !== undefined) {
    result.cpuS = window.cpuS;
    result.cpuSPer1k = per1k(window.cpuS);
  }
  if (window.peakRssMb !== undefined) result.peakRssMb = window.peakRssMb;
  const lag: EventLoopLag | undefined = window.lag;
  if (lag !== undefined) {
    result.eventLoopLagP99Ms = lag.p99Ms;
    result.eventLoopLagMaxMs = lag.maxMs;
  }
  if (window.dbCpuS !== undefined) result.dbCpuSPer1k = per1k(window.dbCpuS);
  if (window.loadGen.lag !== undefined) result.loadGenLagP99Ms = window.loadGen.lag.p99Ms;
  const stream = streamStats(window.groups, streamConcurrency);
  if (stream !== undefined) result.stream = stream;
  return result;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Counts are summed over rounds (one error is one too many), peaks are maxima, the rest medians. */
const SUMMED = new Set(['requests', 'ok', 'non2xx', 'errors', 'unfinished', 'stalled', 'silent', 'incomplete', 'cpuS', 'loadGenCpuS']);
const PEAKS = new Set(['maxMs', 'peakRssMb', 'eventLoopLagMaxMs', 'gapMaxMs']);

function combine<T extends object>(items: T[]): T {
  const out: Record<string, unknown> = {};
  const keys = new Set(items.flatMap((item) => Object.keys(item)));
  for (const key of keys) {
    const values = items.map((item) => (item as Record<string, unknown>)[key]).filter((v) => v !== undefined);
    if (values.length === 0) continue;
    if (typeof values[0] === 'number') {
      const numbers = values as number[];
      out[key] = SUMMED.has(key) ? round3(numbers.reduce((a, b) => a + b, 0)) : PEAKS.has(key) ? Math.max(...numbers) : round3(median(numbers));
    } else if (key === 'byStatus') {
      const merged: Record<string, number> = {};
      for (const v of values) mergeStatus(merged, v as Record<string, number>);
      out[key] = merged;
    } else out[key] = combine(values as object[]);
  }
  return out as T;
}

export function combineRounds(results: TargetResult[]): TargetResult {
  return results.length === 1 ? results[0]! : combine(results);
}

export function ratiosOf(targets: Record<string, TargetResult>): Ratios {
  const { direct, bare, nemo } = targets as Record<'direct' | 'bare' | 'nemo', TargetResult>;
  const ratios: Ratios = {
    nemoOverBareRps: ratio(nemo.rps, bare.rps),
    nemoOverDirectRps: ratio(nemo.rps, direct.rps),
    bareOverDirectRps: ratio(bare.rps, direct.rps),
    addedP50Ms: round3(nemo.p50Ms - direct.p50Ms),
    addedP99Ms: round3(nemo.p99Ms - direct.p99Ms),
    bareAddedP99Ms: round3(bare.p99Ms - direct.p99Ms),
  };
  if (nemo.cpuSPer1k !== undefined && bare.cpuSPer1k !== undefined) ratios.nemoOverBareCpuPer1k = ratio(nemo.cpuSPer1k, bare.cpuSPer1k);
  const free = targets['nemo-free'];
  const plain = targets['nemo-plain'];
  if (free !== undefined && plain !== undefined) {
    ratios.nemoPlainOverNemoFreeRps = ratio(plain.rps, free.rps);
    ratios.ledgerAddedP99Ms = round3(plain.p99Ms - free.p99Ms);
    ratios.nemoOverNemoPlainRps = ratio(nemo.rps, plain.rps);
    ratios.guardrailsAddedP99Ms = round3(nemo.p99Ms - plain.p99Ms);
  }
  const fallback = targets['nemo-node'];
  if (fallback !== undefined) {
    ratios.nemoNodeOverNemoRps = ratio(fallback.rps, nemo.rps);
    ratios.nemoNodeOverNemoP99 = ratio(fallback.p99Ms, nemo.p99Ms);
    ratios.nemoNodeOverNemoP50 = ratio(fallback.p50Ms, nemo.p50Ms);
    if (fallback.cpuSPer1k !== undefined && nemo.cpuSPer1k !== undefined) ratios.nemoNodeOverNemoCpuPer1k = ratio(fallback.cpuSPer1k, nemo.cpuSPer1k);
    ratios.nemoNodeOverBareRps = ratio(fallback.rps, bare.rps);
  }
  const base = targets['nemo-base'];
  if (base !== undefined) {
    ratios.nemoOverBaseRps = ratio(nemo.rps, base.rps);
    ratios.nemoOverBaseP99 = ratio(nemo.p99Ms, base.p99Ms);
    if (nemo.cpuSPer1k !== undefined && base.cpuSPer1k !== undefined) ratios.nemoOverBaseCpuPer1k = ratio(nemo.cpuSPer1k, base.cpuSPer1k);
  }
  return ratios;
}

export function streamSection(targets: Record<string, TargetResult>, concurrent: number, knee: KneeResult | undefined): StreamSection {
  const s = (name: string): StreamStats | undefined => targets[name]?.stream;
  const nemo = s('nemo');
  const bare = s('bare');
  const direct = s('direct');
  const section: StreamSection = {
    concurrent,
    gapP99Ms: nemo?.gapP99Ms ?? 0,
    bareGapP99Ms: bare?.gapP99Ms ?? 0,
    directGapP99Ms: direct?.gapP99Ms ?? 0,
    addedGapP99Ms: round3((nemo?.gapP99Ms ?? 0) - (bare?.gapP99Ms ?? 0)),
    ttftP99Ms: nemo?.ttftP99Ms ?? 0,
    bareTtftP99Ms: bare?.ttftP99Ms ?? 0,
    stalled: nemo?.stalled ?? 0,
    bareStalled: bare?.stalled ?? 0,
    directStalled: direct?.stalled ?? 0,
  };
  const fallback = s('nemo-node');
  if (fallback !== undefined) {
    section.nemoNodeGapP99Ms = fallback.gapP99Ms;
    section.nemoNodeStalled = fallback.stalled;
  }
  const base = s('nemo-base');
  if (base !== undefined) {
    section.nemoBaseGapP99Ms = base.gapP99Ms;
    section.nemoBaseStalled = base.stalled;
  }
  if (knee !== undefined) section.knee = knee;
  return section;
}

/** The agent scenario's own numbers: time to first token, CPU per request and what was sent, per target. */
export function agentSection(targets: Record<string, TargetResult>, shape: AgentShape): AgentSection {
  const of = (t: TargetResult): AgentTarget => ({
    rps: t.rps,
    ttftP50Ms: t.stream?.ttftP50Ms ?? 0,
    ttftP99Ms: t.stream?.ttftP99Ms ?? 0,
    cpuMsPerRequest: t.cpuSPer1k,
    meanRequestKb: t.meanRequestKb,
    stalled: t.stream?.stalled ?? 0,
  });
  const perTarget = Object.fromEntries(Object.entries(targets).map(([name, t]) => [name, of(t)]));
  const nemo = perTarget.nemo!;
  const bare = perTarget.bare!;
  const section: AgentSection = {
    ...shape,
    targets: perTarget,
    nemoOverBareRps: ratio(nemo.rps, bare.rps),
    nemoOverBareTtftP50: ratio(nemo.ttftP50Ms, bare.ttftP50Ms),
    nemoOverBareTtftP99: ratio(nemo.ttftP99Ms, bare.ttftP99Ms),
  };
  if (nemo.cpuMsPerRequest !== undefined && bare.cpuMsPerRequest !== undefined) section.nemoOverBareCpuPerRequest = ratio(nemo.cpuMsPerRequest, bare.cpuMsPerRequest);
  return section;
}
