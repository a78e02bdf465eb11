// The stream knee: the most concurrent streams each target holds with an inter-chunk gap p99 of at
// most 100 ms and no stalled stream. A ramp of steps (250, 500, 1000, 2000, 4000 by default), each
// a short window per target, targets interleaved within a step; a target leaves the ramp at its
// first failed step, so the time is bounded by steps x targets x one window.
import type { TargetResult } from './report.js';
import type { Target } from './targets.js';

export const KNEE_MAX_GAP_P99_MS = 100;

export interface KneeStep {
  streams: number;
  held: boolean;
  gapP99Ms: number;
  ttftP99Ms: number;
  stalled: number;
  peakRssMb?: number;
  cpuSPer1k?: number;
  eventLoopLagP99Ms?: number;
  loadGenLagP99Ms?: number;
}

export interface KneeResult {
  steps: number[];
  durationS: number;
  maxGapP99Ms: number;
  /** Per target: the largest step held (0: not even the first) and every step it ran. */
  targets: Record<string, { held: number; steps: KneeStep[] }>;
}

/** 0 means not even the first step; the last step held means at least that many. */
export function heldText(held: number, steps: number[]): string {
  if (held === 0) return `< ${steps[0]}`;
  return held === steps.at(-1) ? `>= ${held}` : String(held);
}

export type MeasureStreams = (target: Target, streams: number, label: string) => Promise<TargetResult>;

export async function runKnee(steps: number[], durationS: number, targets: Target[], measure: MeasureStreams): Promise<KneeResult> {
  const result: KneeResult = { steps, durationS, maxGapP99Ms: KNEE_MAX_GAP_P99_MS, targets: {} };
  for (const target of targets) result.targets[target.name] = { held: 0, steps: [] };
  const climbing = new Set(targets);
  for (const streams of steps) {
    for (const target of targets) {
      if (!climbing.has(target)) continue;
      const measured = await measure(target, streams, `[knee ${streams} streams] ${target.name}`);
      const s = measured.stream;
      const stalled = s?.stalled ?? streams;
      const gapP99Ms = s?.gapP99Ms ?? Infinity;
      const held = stalled === 0 && gapP99Ms <= KNEE_MAX_GAP_P99_MS && measured.errors === 0;
      const step: KneeStep = { streams, held, gapP99Ms, ttftP99Ms: s?.ttftP99Ms ?? 0, stalled };
      if (measured.peakRssMb !== undefined) step.peakRssMb = measured.peakRssMb;
      if (measured.cpuSPer1k !== undefined) step.cpuSPer1k = measured.cpuSPer1k;
      if (measured.eventLoopLagP99Ms !== undefined) step.eventLoopLagP99Ms = measured.eventLoopLagP99Ms;
      if (measured.loadGenLagP99Ms !== undefined) step.loadGenLagP99Ms = measured.loadGenLagP99Ms;
      const entry = result.targets[target.name]!;
      entry.steps.push(step);
      if (held) entry.held = streams;
      else climbing.delete(target);
    }
    if (climbing.size === 0) break;
  }
  return result;
}
