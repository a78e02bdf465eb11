// The columns of LiteLLM's tables (schema public, owned by LiteLLM's Prisma migrations) that
// NemoRouter reads, and the types it can read them as. Nothing else of public is read: LiteLLM may
// add tables and columns freely. This list is the contract `nemo litellm doctor` and /readyz
// check against the catalog; migrations/0009_litellm_interop.sql's functions read exactly these.

/** pg_type.typname values a column may have (Prisma's Int and BigInt both fit a rate limit). */
type TypeNames = readonly string[];

const TEXT = ['text', 'varchar'] as const;
const TEXT_ARRAY = ['_text', '_varchar'] as const;
const BOOL = ['bool'] as const;
const BIGINT = ['int8', 'int4'] as const;
const TIMESTAMP = ['timestamp', 'timestamptz'] as const;

export const LITELLM_COLUMNS: Readonly<Record<string, Readonly<Record<string, TypeNames>>>> = {
  LiteLLM_VerificationToken: {
    token: TEXT,
    key_name: TEXT,
    key_alias: TEXT,
    expires: TIMESTAMP,
    models: TEXT_ARRAY,
    user_id: TEXT,
    team_id: TEXT,
    organization_id: TEXT,
    blocked: BOOL,
    rpm_limit: BIGINT,
    tpm_limit: BIGINT,
  },
  LiteLLM_TeamTable: {
    team_id: TEXT,
    team_alias: TEXT,
    organization_id: TEXT,
    models: TEXT_ARRAY,
    blocked: BOOL,
    rpm_limit: BIGINT,
    tpm_limit: BIGINT,
  },
  LiteLLM_OrganizationTable: {
    organization_id: TEXT,
    organization_alias: TEXT,
  },
  LiteLLM_OrganizationMembership: {
    user_id: TEXT,
    organization_id: TEXT,
    user_role: TEXT,
  },
};

export const LITELLM_TABLES: readonly string[] = Object.keys(LITELLM_COLUMNS);
