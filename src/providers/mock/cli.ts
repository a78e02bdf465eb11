// `nemo mock-upstream`: the mock upstream as its own process for tests and benchmarks. Prints one
// line, `mock upstream listening on http://HOST:PORT`, which callers parse; closes on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { MOCK_FAULTS, MOCK_REASONING_TEXT, mockBehaviourSchema, type MockBehaviour } from '../../config/schema.js';
import { startMockUpstream } from './server.js';

const USAGE = `usage: nemo mock-upstream [--port N] [--host H] [--ttft-ms N] [--tokens-per-second N]
                          [--completion-tokens N] [--no-usage] [--cached-prompt-tokens N]
                          [--reasoning-tokens N] [--reasoning-text ${MOCK_REASONING_TEXT.join('|')}]
                          [--fault ${MOCK_FAULTS.join('|')}]`;

const OPTIONS = {
  port: { type: 'string', default: '8090' },
  host: { type: 'string', default: '127.0.0.1' },
  'ttft-ms': { type: 'string' },
  'tokens-per-second': { type: 'string' },
  'completion-tokens': { type: 'string' },
  'no-usage': { type: 'boolean', default: false },
  'cached-prompt-tokens': { type: 'string' },
  'reasoning-tokens': { type: 'string' },
  'reasoning-text': { type: 'string' },
  fault: { type: 'string' },
} as const;

/** Resolves once the server has closed after a signal. */
export async function mockUpstreamMain(args: string[]): Promise<void> {
  const parsed = parseOptions(args);
  if (typeof parsed === 'string') {
    process.stderr.write(`nemo mock-upstream: ${parsed}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const upstream = await startMockUpstream(parsed);
  process.stdout.write(`mock upstream listening on ${upstream.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      upstream.close().then(resolve, (err: unknown) => {
        process.stderr.write(`nemo mock-upstream: close failed: ${String(err)}\n`);
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

interface CliOptions {
  port: number;
  host: string;
  /** Complete: the schema fills what no flag set. */
  defaults: MockBehaviour;
}

/** The options, or every problem with them in one message. */
export function parseOptions(args: string[]): CliOptions | string {
  let values;
  try {
    ({ values } = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    return (err as Error).message;
  }
  const problems: string[] = [];
  const port = Number(values.port);
  if (values.port.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) problems.push(`--port must be an integer 0-65535, got ${JSON.stringify(values.port)}`);
  const raw: Record<string, unknown> = {};
  const num = (flag: keyof typeof OPTIONS, key: keyof MockBehaviour): void => {
    const text = values[flag];
    if (typeof text !== 'string') return;
    raw[key] = text.trim() === '' ? NaN : Number(text);
  };
  num('ttft-ms', 'ttftMs');
  num('tokens-per-second', 'tokensPerSecond');
  num('completion-tokens', 'completionTokens');
  num('cached-prompt-tokens', 'cachedPromptTokens');
  num('reasoning-tokens', 'reasoningTokens');
  if (values['no-usage']) raw.reportUsage = false;
  if (values['reasoning-text'] !== undefined) raw.reasoningText = values['reasoning-text'];
  if (values.fault !== undefined) raw.fault = values.fault;
  const behaviour = mockBehaviourSchema.safeParse(raw);
  if (!behaviour.success) {
    for (const issue of behaviour.error.issues) problems.push(`--${flagOf(String(issue.path[0]))}: ${issue.message}`);
  }
  if (problems.length > 0 || !behaviour.success) return problems.join('\n');
  return { port, host: values.host, defaults: behaviour.data };
}

function flagOf(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace('report-usage', 'no-usage');
}
