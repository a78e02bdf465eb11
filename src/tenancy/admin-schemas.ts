// Admin API inputs, validated strictly: unknown fields, wrong types and oversized values are 400s.
import { z } from 'zod';

// PostgreSQL text cannot hold NUL: refused here as bad input rather than failing in the database.
const noNul = (value: string) => !value.includes('\u0000');
const name = z.string().trim().min(1).max(200).refine(noNul, 'must not contain NUL characters');
const uuid = z.uuid();
const modelList = z.array(z.string().min(1).max(256).refine(noNul, 'must not contain NUL characters')).max(1000);

export const createOrgInput = z.strictObject({ name });
export const createTeamInput = z.strictObject({ name });
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
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
});
export const updateConfigInput = z.strictObject({
  allowed_models: modelList.nullable().optional(),
  default_guardrail_policy: z.record(z.string(), z.unknown()).optional(),
  logging_level: z.enum(['none', 'metadata', 'full']).optional(),
});

export type CreateKeyInput = z.infer<typeof createKeyInput>;
export type CreateMemberInput = z.infer<typeof createMemberInput>;
export type UpdateConfigInput = z.infer<typeof updateConfigInput>;

export const isUuid = (value: string): boolean => uuid.safeParse(value).success;
