#!/usr/bin/env node
// The `nemo` command. Each subcommand is one function; admin commands join as the database does.
import { ADMIN_USAGE, UsageError, adminMain, isAdminCommand } from './admin-cli.js';
import { ConfigError, loadConfig } from './config/load.js';
import { MigrationError } from './db/migrate.js';

const USAGE = `usage: nemo <command>

commands:
  start                 run the gateway (config: NEMO_CONFIG, PORT, HOST; see docs/configuration.md)
  check-config          validate the configuration and print the model table
  mock-upstream [opts]  run the simulated OpenAI-compatible upstream
                        (--port N --host H --ttft-ms N --tokens-per-second N
                         --completion-tokens N --no-usage --fault F)

${ADMIN_USAGE}`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (isAdminCommand(command)) return adminMain(argv);
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
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
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
  process.stderr.write(`nemo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
