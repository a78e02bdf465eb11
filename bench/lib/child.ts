// Child processes for the bench: spawn, wait until ready (a stdout line or an HTTP 200), keep a
// short output tail for error messages, and stop reliably (SIGTERM, then SIGKILL).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const TAIL_CHARS = 4000;

export interface Child {
  name: string;
  proc: ChildProcess;
  /** Last few KB of stdout+stderr; only kept as raw text so a chatty child costs the bench little. */
  tail(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

/** Runs `node ...args` with exactly `env` (callers copy process.env when they want it). */
export function spawnChild(name: string, args: string[], env: NodeJS.ProcessEnv = process.env): Child {
  return spawnProcess(name, process.execPath, args, env);
}

/** Runs any executable (e.g. prometheus) with the same output tail and stop() as spawnChild. */
export function spawnProcess(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Child {
  const proc = spawn(command, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  // Always drain both pipes: a child blocked on a full pipe would look like a slow gateway.
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_CHARS);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = (): boolean => proc.exitCode !== null || proc.signalCode !== null;
  // A spawn failure (e.g. EAGAIN) surfaces through waitFor*'s exit check, not as an uncaught error.
  proc.on('error', (error) => keep(Buffer.from(`spawn error: ${error.message}\n`)));
  return {
    name,
    proc,
    tail: () => tail,
    exited,
    async stop() {
      if (exited() || proc.pid === undefined) return;
      const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      // Unref'd grace timers: a pending timer must not hold the bench open once the child is gone.
      const timedOut = Symbol('timeout');
      if ((await Promise.race([gone, sleep(3000, timedOut, { ref: false })])) !== timedOut) return;
      proc.kill('SIGKILL');
      await Promise.race([gone, sleep(2000, undefined, { ref: false })]);
    },
  };
}

function notReady(child: Child, what: string): Error {
  const output = child.tail().trim();
  return new Error(`${child.name} ${what}${output ? `; last output:\n${output}` : ''}`);
}

/** Resolves with the first stdout line matching `pattern`; rejects on exit or timeout. */
export function waitForLine(child: Child, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const stdout = child.proc.stdout;
    if (stdout === null) {
      reject(new Error(`${child.name} has no stdout pipe`));
      return;
    }
    let buffered = '';
    const cleanup = (): void => {
      clearTimeout(timer);
      stdout.off('data', onData);
      child.proc.off('exit', onExit);
    };
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const match = line.match(pattern);
        if (match) {
          cleanup();
          resolve(match);
          return;
        }
      }
    };
    const onExit = (): void => {
      cleanup();
      reject(notReady(child, `exited (code ${child.proc.exitCode}, signal ${child.proc.signalCode}) before it was ready`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(notReady(child, `did not print ${pattern} within ${timeoutMs} ms`));
    }, timeoutMs);
    stdout.on('data', onData);
    child.proc.on('exit', onExit);
    if (child.exited()) onExit();
  });
}

/** Polls `url` until it answers 200; rejects on child exit or timeout. */
export async function waitForHttp(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (child.exited()) {
      throw notReady(child, `exited (code ${child.proc.exitCode}, signal ${child.proc.signalCode}) before it was ready`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
      lastError = `status ${response.status}`;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  throw notReady(child, `did not answer 200 on ${url} within ${timeoutMs} ms (${lastError})`);
}

/** Peak resident set size in MB (Linux VmHWM); undefined where /proc is unavailable. */
export function peakRssMb(child: Child): number | undefined {
  if (child.proc.pid === undefined || child.exited()) return undefined;
  try {
    const status = readFileSync(`/proc/${child.proc.pid}/status`, 'utf8');
    const match = status.match(/^VmHWM:\s+(\d+)\s+kB/m);
    return match ? Math.round(Number(match[1]) / 102.4) / 10 : undefined;
  } catch {
    return undefined;
  }
}
