// Structured logs: one JSON object per line on stderr, so stdout stays for what a command prints.
// One threshold per process, set once by the entry point: the gateway logs from info, one-shot
// CLI commands from warn (their output is the JSON on stdout).
type Fields = Record<string, unknown>;

export type LogLevel = 'info' | 'warn' | 'error';

const RANK: Readonly<Record<LogLevel, number>> = { info: 1, warn: 2, error: 3 };

let threshold = RANK.info;

/** Lines below `level` are dropped from now on. */
export function setLogLevel(level: LogLevel): void {
  threshold = RANK[level];
}

function write(level: LogLevel, msg: string, fields?: Fields): void {
  if (RANK[level] < threshold) return;
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

export const log = {
  info: (msg: string, fields?: Fields) => write('info', msg, fields),
  warn: (msg: string, fields?: Fields) => write('warn', msg, fields),
  error: (msg: string, fields?: Fields) => write('error', msg, fields),
};
