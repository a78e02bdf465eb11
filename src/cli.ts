#!/usr/bin/env node
// The `nemo` command. Each subcommand is one function; admin commands join as the database does.
import { ADMIN_USAGE, UsageError, adminMain, isAdminCommand } from './admin-cli.js';
import { ConfigError, loadConfig } from './config/load.js';
import { EmbeddedPostgresError } from './db/embedded.js';
import { MigrationError } from './db/migrate.js';
import { ListenError } from './http/server.js';
import { HotfixError } from './litellm/hotfixes.js';
import { setLogLevel } from './log.js';

const USAGE = `usage: nemo <command>

commands:
  start                 run the gateway (config: NEMO_CONFIG, PORT, HOST; see docs/configuration.md)
  check-config          validate the configuration and print the model table
  mock-upstream [opts]  run the simulated OpenAI-compatible upstream
                        (--port N --host H --ttft-ms N --tokens-per-second N
                         --completion-tokens N --no-usage --fault F)

${ADMIN_USAGE}
options (anywhere among the arguments):
  --verbose             log info lines on stderr too (only \`start\` and \`mock-upstream\` do by default)

exit status: 0 done; 1 failed (or \`ledger check\` found a mismatch); 2 a mistake in the command or configuration
`;

/** Servers log from info; every other command's output is its stdout, so only warnings and errors join it. */
const SERVERS: ReadonlySet<string> = new Set(['start', 'mock-upstream']);

async function main(argv: string[]): Promise<void> {
  // --verbose belongs to `nemo` itself: taken out before any command parses its arguments.
  const verbose = argv.includes('--verbose');
  const args = argv.filter((arg) => arg !== '--verbose');
  const [command, ...rest] = args;
  if (!verbose && (command === undefined || !SERVERS.has(command))) setLogLevel('warn');
  if (isAdminCommand(command)) return adminMain(args);
  switch (command) {
    case 'start': {
      const { runGateway } = await import('./main.js');
      return runGateway();
    }
    case 'check-config': {
      const config = loadConfig();
      process.stdout.write(`configuration OK (${config.source})\n`);
      for (const route of config.models.values()) {
        process.stdout.write(`  ${route.name}: ${route.deployments.map((d) => `${d.id} [${d.provider} ${d.model}]`).join(', ')}\n`);
      }
      return;
    }
    case 'mock-upstream': {
      const { mockUpstreamMain } = await import('./providers/mock/cli.js');
      return mockUpstreamMain(rest);
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    case undefined:
      process.stderr.write(USAGE);
      process.exitCode = 2;
      return;
    default:
      process.stderr.write(`nemo: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof UsageError) {
    process.stderr.write(`nemo: ${err.message}\n`);
    process.exitCode = 2;
    return;
  }
  if (err instanceof MigrationError) {
    process.stderr.write(`nemo: ${err.message} (${err.code})\n`);
    process.exitCode = 1;
    return;
  }
  // Expected failures say all in their message; a stack is kept for the unexpected ones.
  if (err instanceof EmbeddedPostgresError || err instanceof ListenError || err instanceof HotfixError) {
    process.stderr.write(`nemo: ${err.message}\n`);
    process.exitCode = 1;
    return;
  }
  process.stderr.write(`nemo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
