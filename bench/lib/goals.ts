// The issue's performance targets, checked against a run and reported, never asserted: the run
// passes or fails on correctness (the ledger), not on speed. A target whose scenario did not run
// is `null` (not evaluated), as is the knee, which is reported rather than judged.
import type { ScenarioReport } from './report.js';
import { heldText } from './knee.js';

export interface GoalResult {
  id: string;
  scenario: string;
  text: string;
  value: number | null;
  limit: string;
  /** null: not evaluated (its scenario did not run) or reported only. */
  met: boolean | null;
  note?: string;
}

const STREAM_GOAL_AT = 1000;
const fmt = (value: number): string => (Number.isInteger(value) ? String(value) : value.toFixed(2));

export function evaluateGoals(reports: Partial<Record<string, ScenarioReport>>): GoalResult[] {
  const { chat, latency, stream, agent } = reports;
  const hot = reports['chat-hot'];
  const goals: GoalResult[] = [];
  const add = (id: string, scenario: string, text: string, limit: string, value: number | undefined, met: (v: number) => boolean, note?: string): void => {
    const evaluated = value !== undefined && Number.isFinite(value);
    goals.push({ id, scenario, text, value: evaluated ? value : null, limit, met: evaluated ? met(value) : null, ...(note ? { note } : {}) });
  };

  add('chat-rps', 'chat', 'nemo RPS / bare RPS', '>= 0.6', chat?.ratios.nemoOverBareRps, (v) => v >= 0.6);
  add('latency-added-p99', 'latency', 'nemo p99 - direct p99 (ms), one connection', '<= 2', latency?.ratios.addedP99Ms, (v) => v <= 2);
  const streamNote = stream !== undefined && stream.streams!.concurrent !== STREAM_GOAL_AT ? `measured at ${stream.streams!.concurrent} streams; the target is stated at ${STREAM_GOAL_AT}` : undefined;
  add('stream-no-stall', 'stream', 'nemo stalled streams', '= 0', stream?.streams?.stalled, (v) => v === 0, streamNote);
  add('stream-gap', 'stream', 'nemo gap p99 - bare gap p99 (ms)', '<= 10', stream?.streams?.addedGapP99Ms, (v) => v <= 10, streamNote);
  add('stream-rss', 'stream', 'nemo peak RSS (MB) with the streams open', '<= 200', stream?.targets.nemo?.peakRssMb, (v) => v <= 200, streamNote);
  add('stream-cpu', 'stream', 'nemo CPU per stream / bare CPU per stream', '<= 1.15', stream?.ratios.nemoOverBareCpuPer1k, (v) => v <= 1.15, streamNote);
  add('chat-event-loop-lag', 'chat', 'nemo event-loop lag p99 (ms) under chat load', '<= 10', chat?.targets.nemo?.eventLoopLagP99Ms, (v) => v <= 10);
  const hotRatio = hot !== undefined && chat !== undefined && chat.targets.nemo!.rps > 0 ? Number((hot.targets.nemo!.rps / chat.targets.nemo!.rps).toFixed(3)) : undefined;
  add('chat-hot-rps', 'chat-hot', 'nemo chat-hot RPS / nemo chat RPS', '>= 0.8', hotRatio, (v) => v >= 0.8, hot !== undefined && chat === undefined ? 'needs chat in the same run (--scenario all)' : undefined);
  add('agent-rps', 'agent', 'nemo RPS / bare RPS, agent sessions (up to ~100k-token histories, streamed)', '>= 0.5', agent?.ratios.nemoOverBareRps, (v) => v >= 0.5);
  add('big-prompt-rps', 'big-prompt', 'nemo RPS / bare RPS, ~20k-token prompts', '>= 0.3', reports['big-prompt']?.ratios.nemoOverBareRps, (v) => v >= 0.3);
  add('chat-guardrails-rps', 'chat', 'nemo RPS / nemo-plain RPS: what guardrails on a short prompt cost (--ablation)', '>= 0.95', chat?.ratios.nemoOverNemoPlainRps, (v) => v >= 0.95, chat !== undefined && chat.ratios.nemoOverNemoPlainRps === undefined ? 'needs --ablation' : undefined);

  const knee = stream?.streams?.knee;
  if (knee !== undefined) {
    const held = Object.entries(knee.targets).map(([name, t]) => `${name} ${heldText(t.held, knee.steps)}`);
    goals.push({ id: 'stream-knee', scenario: 'stream', text: `most streams held with gap p99 <= ${knee.maxGapP99Ms} ms and no stall: ${held.join(', ')}`, value: knee.targets.nemo?.held ?? null, limit: 'reported', met: null });
  }
  return goals;
}

export function formatGoals(goals: GoalResult[]): string {
  return goals
    .map((g) => {
      const verdict = g.limit === 'reported' ? 'INFO' : g.met === null ? 'n/a ' : g.met ? 'PASS' : 'FAIL';
      const value = g.limit === 'reported' ? '' : g.value === null ? ' (not run)' : ` = ${fmt(g.value)} (target ${g.limit})`;
      return `${verdict}  ${g.scenario.padEnd(9)} ${g.text}${value}${g.note ? `  [${g.note}]` : ''}`;
    })
    .join('\n');
}
