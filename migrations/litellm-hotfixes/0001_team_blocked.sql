-- LiteLLM versions before teams could be blocked have no "LiteLLM_TeamTable".blocked; NemoRouter
-- refuses keys of a blocked team, so it reads it. Same definition as LiteLLM's own later schema.
-- Applied only by `nemo litellm hotfix` (docs/litellm.md: read the note on LiteLLM upgrades first).
ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS "blocked" BOOLEAN NOT NULL DEFAULT false;
