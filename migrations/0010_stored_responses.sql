-- Stored responses of POST /v1/responses (OpenAI's Responses API, `store` true by default): the
-- response object as the client received it, and the conversation a later request continues with
-- previous_response_id (the chat messages sent upstream, instructions left out, then the answer).
-- Tenant data under forced row-level security, read and written only in the org's own transactions
-- (no definer function). Each row is kept its org's log retention at the time it was written; the
-- gateway deletes expired rows (in each org's own transaction) and never serves one.

CREATE TABLE IF NOT EXISTS nemo.stored_responses (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  -- resp_ and 48 hex digits, chosen by the gateway.
  response_id text NOT NULL CHECK (length(response_id) BETWEEN 1 AND 200),
  -- The key that created it (no foreign key: a LiteLLM key has no row in nemo.api_keys).
  key_id uuid,
  model text NOT NULL CHECK (length(model) <= 256),
  response jsonb NOT NULL CHECK (jsonb_typeof(response) = 'object'),
  conversation jsonb NOT NULL CHECK (jsonb_typeof(conversation) = 'array'),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (org_id, response_id)
);

-- The retention sweep: an org's expired rows by one index range.
CREATE INDEX IF NOT EXISTS stored_responses_expiry ON nemo.stored_responses (org_id, expires_at);

SELECT nemo.enable_tenant_rls('stored_responses');
GRANT SELECT, INSERT, DELETE ON nemo.stored_responses TO nemo_app;
