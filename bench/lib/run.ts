// One bench run's children, temp dir and load generator, torn down exactly once whichever way the
// run ends (normal end, error, Ctrl-C), with a synchronous last resort on process exit.
import { rm } from 'node:fs/promises';
import type { Child } from './child.js';

export class Run {
  readonly children: Child[] = [];
  readonly abort = new AbortController();
  tmpDir: string | undefined;
  private cleaning: Promise<void> | undefined;

  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      this.abort.abort();
      await Promise.all(this.children.map((child) => child.stop()));
      if (this.tmpDir !== undefined) await rm(this.tmpDir, { recursive: true, force: true });
    })();
    return this.cleaning;
  }

  /** Last resort on process exit (uncaught error, second Ctrl-C): never leave a child running. */
  killSync(): void {
    for (const child of this.children) if (!child.exited()) child.proc.kill('SIGKILL');
  }
}
