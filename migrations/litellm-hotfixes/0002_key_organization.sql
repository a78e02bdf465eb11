-- LiteLLM versions before keys carried an organization have no
-- "LiteLLM_VerificationToken".organization_id; NemoRouter reads it (a key's org, before its team's).
-- Same definition as LiteLLM's own later schema (its foreign key is LiteLLM's to add, not ours).
ALTER TABLE public."LiteLLM_VerificationToken" ADD COLUMN IF NOT EXISTS "organization_id" TEXT;
