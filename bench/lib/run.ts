// One bench run's children, temp dir and load generator, torn down exactly once whichever way the
// run ends (normal end, error, Ctrl-C), with a synchronous last resort on process exit.
import { rm } from 'node:fs/promises';
import type { Child } from './child.js';

export class Run {
  readonly children: Child[] = [];
  /** Run once the children are gone (e.g. dropping the bench's database, which they used). */
  readonly afterChildren: Array<() => Promise<void>> = [];
  /** Synchronous last resorts for what is not a Child (the embedded PostgreSQL the bench started). */
  readonly killSyncExtra: Array<() => void> = [];
  readonly abort = new AbortController();
  tmpDir: string | undefined;
  private cleaning: Promise<void> | undefined;

  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      this.abort.abort();
      await Promise.all(this.children.map((child) => child.stop()));
      for (const task of this.afterChildren) await task().catch(() => undefined);
      if (this.tmpDir !== undefined) await rm(this.tmpDir, { recursive: true, force: true });
    })();
    return this.cleaning;
  }

  /** Last resort on process exit (uncaught error, second Ctrl-C): never leave a child running. */
  killSync(): void {
    for (const child of this.children) if (!child.exited()) child.proc.kill('SIGKILL');
    for (const kill of this.killSyncExtra) kill();
  }
}
