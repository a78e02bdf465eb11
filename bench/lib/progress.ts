// The live display: on a terminal, one status line rewritten four times a second while a window
// runs (elapsed time, completions, rate, errors, requests in flight); elsewhere (CI logs, the smoke
// test) only whole lines. Everything goes to stderr, so stdout keeps just the tables.
import type { LoadProgress } from './closed-loop.js';

const TICK_MS = 250;
const BAR_WIDTH = 20;

export class Progress {
  private readonly live: boolean;
  private lineShown = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.live = out.isTTY === true;
  }

  /** A whole line, above the live line if one is showing. */
  note(line: string): void {
    this.clear();
    this.out.write(`${line}\n`);
  }

  /** Shows `label` with the window's counters until the returned function is called. */
  window(label: string, durationMs: number, counters: LoadProgress): () => void {
    if (!this.live) return () => undefined;
    const startedAt = performance.now();
    let lastCompleted = 0;
    let lastAt = startedAt;
    let rate = 0;
    const draw = (): void => {
      const now = performance.now();
      const elapsedMs = now - startedAt;
      if (now - lastAt >= 1000) {
        rate = ((counters.completed - lastCompleted) * 1000) / (now - lastAt);
        lastCompleted = counters.completed;
        lastAt = now;
      }
      const filled = Math.min(BAR_WIDTH, Math.round((elapsedMs / durationMs) * BAR_WIDTH));
      const phase = elapsedMs < durationMs ? `${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)} ${(elapsedMs / 1000).toFixed(1)}/${(durationMs / 1000).toFixed(0)} s` : `draining ${counters.inFlight} in flight`;
      const counts = `${counters.completed} done, ${rate.toFixed(0)}/s, ${counters.inFlight} in flight, ${counters.errors} errors, ${counters.non2xx} non-2xx`;
      this.out.write(`\r\x1b[K${label} ${phase}  ${counts}`);
      this.lineShown = true;
    };
    draw();
    const timer = setInterval(draw, TICK_MS);
    return () => {
      clearInterval(timer);
      this.clear();
    };
  }

  private clear(): void {
    if (!this.lineShown) return;
    this.out.write('\r\x1b[K');
    this.lineShown = false;
  }
}
