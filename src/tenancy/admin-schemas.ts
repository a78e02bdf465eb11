// Admin API inputs, validated strictly: unknown fields, wrong types and oversized values are 400s.
import { z } from 'zod';
import { guardrailPolicySchema } from '../guardrails/types.js';
import { CREDIT_KINDS } from '../ledger/credits.js';
import { USAGE_GROUPS } from '../ledger/usage-report.js';
import { LOG_STATUS_CLASSES } from '../logs/log-list.js';

// PostgreSQL text cannot hold NUL: refused here as bad input rather than failing in the database.
const noNul = (value: string) => !value.includes('\u0000');
const name = z.string().trim().min(1).max(200).refine(noNul, 'must not contain NUL characters');
const uuid = z.uuid();
/**
 * Times a client sends must lie in years 1 to 9999 (UTC). PostgreSQL reads no year 0 in ISO text
 * (1 BC is written with a `BC` suffix) and no 5-digit year as JavaScript prints it, so a time outside
 * would fail in the database: it is refused here as bad input.
 */
const TIME_RANGE_MS = { min: Date.parse('0001-01-01T00:00:00Z'), max: Date.parse('9999-12-31T23:59:59.999Z') };
export const TIME_RANGE_PROBLEM = 'must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, and be written with a year from 0001';
export const inTimeRange = (ms: number) => ms >= TIME_RANGE_MS.min && ms <= TIME_RANGE_MS.max;
/**
 * The text goes to PostgreSQL as it is (a log page's `before` keeps its microseconds), so the year
 * as written must be in range too, not only the instant.
 */
const isoTime = z.iso
  .datetime({ offset: true })
  .refine((v) => !v.startsWith('0000') && inTimeRange(Date.parse(v)), TIME_RANGE_PROBLEM);
const modelList = z.array(z.string().min(1).max(256).refine(noNul, 'must not contain NUL characters')).max(1000);

export const createOrgInput = z.strictObject({ name });
const perMinute = z.number().int().min(1).max(2_000_000_000).nullable().optional();
/** Micro-units per UTC day or month; null or absent: no cap. */
const spendCap = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable().optional();
/** Limits and caps a team or a key may carry; null clears one. */
const limitFields = {
  rpm_limit: perMinute,
  tpm_limit: perMinute,
  daily_spend_cap_micros: spendCap,
  monthly_spend_cap_micros: spendCap,
};
/** A team's or key's guardrail overrides over its org's policy; null removes them. */
const guardrailPolicy = guardrailPolicySchema.nullable().optional();
export const createTeamInput = z.strictObject({ name, ...limitFields, guardrail_policy: guardrailPolicy });
/** PATCH: only the fields given change. */
export const updateTeamInput = z.strictObject({ name: name.optional(), ...limitFields, guardrail_policy: guardrailPolicy });
export const updateKeyInput = z.strictObject({ name: name.optional(), ...limitFields, guardrail_policy: guardrailPolicy });
export const createMemberInput = z.strictObject({
  user_id: uuid.optional(),
  role: z.enum(['owner', 'admin', 'member']),
  team_id: uuid.nullable().optional(),
});
export const createKeyInput = z.strictObject({
  name,
  role: z.enum(['admin', 'member']).default('member'),
  team_id: uuid.nullable().optional(),
  /** null or absent: every model the org allows. */
  allowed_models: modelList.nullable().optional(),
  expires_at: isoTime.nullable().optional(),
  /** Requests / tokens per minute and spend caps for this key; null or absent: unlimited. */
  ...limitFields,
  guardrail_policy: guardrailPolicy,
});
export const updateConfigInput = z.strictObject({
  allowed_models: modelList.nullable().optional(),
  /** The org's guardrails; teams and keys override fields of it. */
  default_guardrail_policy: guardrailPolicySchema.optional(),
  logging_level: z.enum(['none', 'metadata', 'full']).optional(),
  /** Days the org's request logs are kept; null: the gateway's default (logs.retentionDays). */
  log_retention_days: z.number().int().min(1).max(731).nullable().optional(),
});

export type LimitFields = Partial<Record<keyof typeof limitFields, number | null>>;
export const LIMIT_COLUMNS = Object.keys(limitFields) as Array<keyof typeof limitFields>;
export type CreateKeyInput = z.infer<typeof createKeyInput>;
export type CreateMemberInput = z.infer<typeof createMemberInput>;
export type UpdateConfigInput = z.infer<typeof updateConfigInput>;

export const isUuid = (value: string): boolean => uuid.safeParse(value).success;

export const creditInput = z.strictObject({
  kind: z.enum(CREDIT_KINDS).default('topup'),
  /** Micro-units of the org's currency; positive for top-ups and refunds, either sign for adjustments. */
  amount_micros: z.number().int().refine((n) => Number.isSafeInteger(n) && n !== 0, 'must be a non-zero safe integer'),
  /** Repeating a call with the same key applies it once. */
  idempotency_key: z.string().min(1).max(200).refine(noNul, 'must not contain NUL characters'),
  note: z.string().max(1000).refine(noNul, 'must not contain NUL characters').optional(),
});
export const usageQuery = z.strictObject({
  /** ISO times; default: the start of the current UTC month, and now. */
  from: isoTime.optional(),
  to: isoTime.optional(),
  /** Comma-separated, any of day, key, team, model; default day. */
  group_by: z
    .string()
    .default('day')
    .transform((v) => [...new Set(v.split(',').map((g) => g.trim()).filter(Boolean))])
    .pipe(z.array(z.enum(USAGE_GROUPS)).min(1)),
});
export const ledgerQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.coerce.number().int().positive().optional(),
});
/** The request-log list: a page (newest first) and equality filters; every value is a bound parameter. */
export const logsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  /** The `created_at` and `log_id` of the last row of the previous page. */
  before: isoTime.optional(),
  before_log_id: uuid.optional(),
  status_class: z.enum(LOG_STATUS_CLASSES).optional(),
  key_id: uuid.optional(),
  team_id: uuid.optional(),
  model: z.string().min(1).max(256).refine(noNul, 'must not contain NUL characters').optional(),
  request_id: z.string().min(1).max(200).refine(noNul, 'must not contain NUL characters').optional(),
});
