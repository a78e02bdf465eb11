// `nemo migrate|orgs|teams|keys`: the admin operations from a shell, through the same
// AdminService the admin API uses, acting as the platform. Output is JSON, one document per call.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import { openDatabase, type Database } from './db/database.js';
import { migrationsDirFromHere } from './db/migrate.js';
import { UNDEFINED_TABLE } from './db/sqlstate.js';
import { GatewayError } from './errors/gateway-error.js';
import { litellmDrift } from './litellm/doctor.js';
import { applyHotfixes, hotfixesDir, readHotfixes } from './litellm/hotfixes.js';
import { AdminService } from './tenancy/admin-service.js';
import type { Principal } from './tenancy/principal.js';

const PLATFORM: Principal = { kind: 'platform' };

export const ADMIN_USAGE = `admin commands (DATABASE_URL, or the embedded PostgreSQL in NEMO_DATA_DIR):
  migrate                                   apply pending migrations
  orgs create <name>                        create an organization
  orgs list                                 list organizations
  orgs config --org <id> [--logging none|metadata|full] [--log-retention-days N|default]
                                            show or change an org's request logging and retention
  teams create --org <id> [limits] <name>   create a team
  teams update --org <id> [--name <name>] [limits] <team id>
                                            rename a team or change its limits
  teams list --org <id>                     list an org's teams
  keys create --org <id> --name <name> [--role admin|member] [--team <id>]
              [--models m1,m2] [--expires <ISO time>] [limits]
                                            create an API key (the secret is printed once)
  keys update --org <id> [--name <name>] [limits] <key id>
                                            rename a key or change its limits
  keys list --org <id>                      list an org's keys (no secrets)
  keys revoke --org <id> <key id>           revoke a key
  spend show --org <id>                     current rate-limit and spend windows of limited keys and teams
  usage report --org <id> [--from ISO] [--to ISO] [--group-by day,key,team,model]
                                            requests and credits charged, from the ledger's data
    limits: --rpm N --tpm N --daily-cap <micros> --monthly-cap <micros> ("none" clears one)
  guardrails set --org <id> [--team <id> | --key <id>] <policy JSON | @file | none>
                                            set the org's guardrail policy, or a team's or key's overrides
  guardrails show --org <id>                the org's policy and every team's and key's overrides
  guardrails events --org <id> [--limit N]  the newest guardrail hits (never the matched text)
  credits add --org <id> --amount <micros> --idempotency-key <k> [--kind topup|refund|adjustment] [--note <text>]
                                            add credits (applied once per idempotency key)
  credits show --org <id>                   available and held credits
  ledger show --org <id> [--limit N]        the newest ledger entries
  ledger check                              verify every account against its ledger and holds, and every
                                            spend window against its holds and charges (exit 1 if not)
  litellm sync                              mirror every LiteLLM organization and team in nemo, same ids
                                            (idempotent; writes nothing in schema public)
  litellm doctor                            compare the LiteLLM columns NemoRouter reads with the catalog
                                            (exit 1 on drift)
  litellm hotfix                            apply migrations/litellm-hotfixes/ to schema public (additive only)
`;

const LIMIT_OPTIONS = { rpm: { type: 'string' }, tpm: { type: 'string' }, 'daily-cap': { type: 'string' }, 'monthly-cap': { type: 'string' } } as const;

/** The limit flags given, as admin API fields: a number, or null for "none". */
function limitsFrom(values: Partial<Record<keyof typeof LIMIT_OPTIONS, string | undefined>>): Record<string, number | null> {
  const fields: Record<string, number | null> = {};
  const names = { rpm: 'rpm_limit', tpm: 'tpm_limit', 'daily-cap': 'daily_spend_cap_micros', 'monthly-cap': 'monthly_spend_cap_micros' } as const;
  for (const [flag, field] of Object.entries(names) as Array<[keyof typeof names, string]>) {
    const value = values[flag];
    if (value === undefined) continue;
    // A non-number stays NaN: the service refuses it with a clear message.
    fields[field] = value === 'none' ? null : Number(value);
  }
  return fields;
}

type Command = (service: AdminService, args: string[]) => Promise<unknown>;

const COMMANDS: Record<string, Command> = {
  'orgs create': (service, args) => service.createOrg(PLATFORM, { name: positional(args, 'name') }),
  'orgs list': (service) => service.listOrgs(PLATFORM),
  'orgs config': (service, args) => {
    const { values } = parseArgs({ args, options: { org: { type: 'string' }, logging: { type: 'string' }, 'log-retention-days': { type: 'string' } } });
    if (!values.org) throw usage('--org is required');
    const body: Record<string, unknown> = {};
    if (values.logging !== undefined) body.logging_level = values.logging;
    const retention = values['log-retention-days'];
    // A non-number stays NaN: the service refuses it with a clear message.
    if (retention !== undefined) body.log_retention_days = retention === 'default' ? null : Number(retention);
    return Object.keys(body).length === 0 ? service.getConfig(PLATFORM, values.org) : service.updateConfig(PLATFORM, values.org, body);
  },
  'teams create': (service, args) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { org: { type: 'string' }, ...LIMIT_OPTIONS } });
    if (!values.org) throw usage('--org is required');
    return service.createTeam(PLATFORM, values.org, { name: positional(positionals, 'name'), ...limitsFrom(values) });
  },
  'teams update': (service, args) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { org: { type: 'string' }, name: { type: 'string' }, ...LIMIT_OPTIONS } });
    if (!values.org) throw usage('--org is required');
    return service.updateTeam(PLATFORM, values.org, positional(positionals, 'team id'), { ...(values.name === undefined ? {} : { name: values.name }), ...limitsFrom(values) });
  },
  'teams list': (service, args) => service.listTeams(PLATFORM, withOrg(args).org),
  'keys create': (service, args) => {
    const { values } = parseArgs({
      args,
      options: { org: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, team: { type: 'string' }, models: { type: 'string' }, expires: { type: 'string' }, ...LIMIT_OPTIONS },
    });
    if (!values.org) throw usage('--org is required');
    const body: Record<string, unknown> = { name: values.name, ...limitsFrom(values) };
    if (values.role !== undefined) body.role = values.role;
    if (values.team !== undefined) body.team_id = values.team;
    if (values.models !== undefined) body.allowed_models = values.models.split(',').filter(Boolean);
    if (values.expires !== undefined) body.expires_at = values.expires;
    return service.createKey(PLATFORM, values.org, body);
  },
  'keys update': (service, args) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { org: { type: 'string' }, name: { type: 'string' }, ...LIMIT_OPTIONS } });
    if (!values.org) throw usage('--org is required');
    return service.updateKey(PLATFORM, values.org, positional(positionals, 'key id'), { ...(values.name === undefined ? {} : { name: values.name }), ...limitsFrom(values) });
  },
  'keys list': (service, args) => service.listKeys(PLATFORM, withOrg(args).org),
  'spend show': (service, args) => service.listSpend(PLATFORM, withOrg(args).org),
  'usage report': (service, args) => {
    const { values } = parseArgs({ args, options: { org: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, 'group-by': { type: 'string' } } });
    if (!values.org) throw usage('--org is required');
    const query: Record<string, string> = {};
    if (values.from !== undefined) query.from = values.from;
    if (values.to !== undefined) query.to = values.to;
    if (values['group-by'] !== undefined) query.group_by = values['group-by'];
    return service.usage(PLATFORM, values.org, query);
  },
  'guardrails set': async (service, args) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { org: { type: 'string' }, team: { type: 'string' }, key: { type: 'string' } } });
    if (!values.org) throw usage('--org is required');
    if (values.team !== undefined && values.key !== undefined) throw usage('--team and --key exclude each other');
    const policy = await readPolicy(positional(positionals, 'policy JSON | @file | none'));
    if (values.team !== undefined) return service.updateTeam(PLATFORM, values.org, values.team, { guardrail_policy: policy });
    if (values.key !== undefined) return service.updateKey(PLATFORM, values.org, values.key, { guardrail_policy: policy });
    // The org level always has a policy: "none" empties it.
    return service.updateConfig(PLATFORM, values.org, { default_guardrail_policy: policy ?? {} });
  },
  'guardrails show': async (service, args) => {
    const { org } = withOrg(args);
    const [config, teams, keys] = await Promise.all([service.getConfig(PLATFORM, org), service.listTeams(PLATFORM, org), service.listKeys(PLATFORM, org)]);
    const overrides = (rows: Array<{ id: string; name: string; guardrail_policy: unknown }>) => rows.filter((r) => r.guardrail_policy != null).map((r) => ({ id: r.id, name: r.name, guardrail_policy: r.guardrail_policy }));
    return { org: (config as { default_guardrail_policy: unknown }).default_guardrail_policy, teams: overrides(teams as never), keys: overrides(keys as never) };
  },
  'guardrails events': (service, args) => {
    const { values } = parseArgs({ args, options: { org: { type: 'string' }, limit: { type: 'string' } } });
    if (!values.org) throw usage('--org is required');
    return service.listGuardrailEvents(PLATFORM, values.org, values.limit === undefined ? {} : { limit: values.limit });
  },
  'credits add': (service, args) => {
    const { values } = parseArgs({
      args,
      options: { org: { type: 'string' }, amount: { type: 'string' }, 'idempotency-key': { type: 'string' }, kind: { type: 'string' }, note: { type: 'string' } },
    });
    if (!values.org) throw usage('--org is required');
    const body: Record<string, unknown> = { amount_micros: Number(values.amount), idempotency_key: values['idempotency-key'] };
    if (values.kind !== undefined) body.kind = values.kind;
    if (values.note !== undefined) body.note = values.note;
    return service.addCredits(PLATFORM, values.org, body);
  },
  'credits show': (service, args) => service.getCredits(PLATFORM, withOrg(args).org),
  'ledger show': (service, args) => {
    const { values } = parseArgs({ args, options: { org: { type: 'string' }, limit: { type: 'string' } } });
    if (!values.org) throw usage('--org is required');
    return service.listLedger(PLATFORM, values.org, values.limit === undefined ? {} : { limit: values.limit });
  },
  'ledger check': async (service) => {
    const offending = await service.ledgerCheck(PLATFORM);
    const offendingWindows = await service.limitWindowsCheck(PLATFORM);
    const ok = offending.length === 0 && offendingWindows.length === 0;
    if (!ok) process.exitCode = 1;
    return { ok, offending, offending_windows: offendingWindows };
  },
  'keys revoke': (service, args) => {
    const { org, rest } = withOrg(args);
    return service.revokeKey(PLATFORM, org, positional(rest, 'key id'));
  },
};

export function isAdminCommand(command: string | undefined): boolean {
  return command === 'migrate' || command === 'litellm' || command === 'orgs' || command === 'teams' || command === 'keys' || command === 'credits' || command === 'ledger' || command === 'spend' || command === 'guardrails' || command === 'usage';
}

export async function adminMain(argv: string[]): Promise<void> {
  const [group, action, ...args] = argv;
  const config = loadConfig();
  if (group === 'migrate') {
    const db = await openDatabase(config.database);
    await db.close();
    process.stdout.write(`${JSON.stringify({ migrated: true, database: db.kind })}\n`);
    return;
  }
  if (group === 'litellm') return litellmMain(config, action);
  const command = COMMANDS[`${group} ${action}`];
  if (command === undefined) throw usage(`unknown command: nemo ${[group, action].filter(Boolean).join(' ')}`);
  let db: Database | undefined;
  try {
    db = await openDatabase(config.database);
    const result = await command(new AdminService(db, new Set(config.models.keys())), args);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } catch (err) {
    if (err instanceof GatewayError) {
      process.stderr.write(`nemo: ${err.message} (${err.code})\n`);
      process.exitCode = err.status >= 500 ? 1 : 2;
      return;
    }
    if (isParseArgsError(err)) throw usage(err.message);
    throw err;
  } finally {
    await db?.close();
  }
}

/** `nemo litellm sync|doctor|hotfix`: below the admin service, on the database itself. */
async function litellmMain(config: ReturnType<typeof loadConfig>, action: string | undefined): Promise<void> {
  if (action !== 'sync' && action !== 'doctor' && action !== 'hotfix') throw usage(`unknown command: nemo litellm${action === undefined ? '' : ` ${action}`}`);
  // Hotfixes are linted before any connection: a refused set touches nothing.
  const hotfixes = action === 'hotfix' ? await readHotfixes(hotfixesDir(migrationsDirFromHere())) : [];
  const db = await openDatabase(config.database);
  try {
    let result: unknown;
    if (action === 'sync') {
      const synced = await db.query('SELECT * FROM nemo.litellm_sync_v1()').catch((err: unknown) => {
        if ((err as { code?: string }).code !== UNDEFINED_TABLE) throw err;
      });
      if (synced === undefined) {
        process.stderr.write('nemo: no LiteLLM tables in schema public: is this the database LiteLLM migrated? (see nemo litellm doctor)\n');
        process.exitCode = 1;
        return;
      }
      result = synced.rows[0];
    } else if (action === 'doctor') {
      result = await litellmDrift(db);
    } else {
      const { applied } = await applyHotfixes(db.ownerUrl, hotfixes);
      result = { applied, ...(await litellmDrift(db)) };
    }
    if ((result as { ok?: boolean }).ok === false) process.exitCode = 1;
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await db.close();
  }
}

export class UsageError extends Error {}

/** node:util's parseArgs refusing an unknown option or a missing value: a usage mistake. */
function isParseArgsError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

function usage(message: string): UsageError {
  return new UsageError(`${message}\n${ADMIN_USAGE}`);
}

/** A policy given inline, from a file (@path), or `none`; JSON errors are usage errors. */
async function readPolicy(arg: string): Promise<unknown> {
  if (arg === 'none') return null;
  const text = arg.startsWith('@') ? await readFile(arg.slice(1), 'utf8') : arg;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw usage('the policy must be JSON (inline, or @file)');
  }
}

function withOrg(args: string[]): { org: string; rest: string[] } {
  const { values, positionals } = parseArgs({ args, options: { org: { type: 'string' } }, allowPositionals: true });
  if (!values.org) throw usage('--org is required');
  return { org: values.org, rest: positionals };
}

function positional(args: string[], what: string): string {
  const value = args.filter((a) => !a.startsWith('--'))[0];
  if (value === undefined) throw usage(`missing <${what}>`);
  return value;
}
