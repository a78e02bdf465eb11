// Stored responses of POST /v1/responses (nemo.stored_responses): the response object a client
// may fetch again, and the conversation a later request continues with previous_response_id. Tenant
// data: every read and write runs in the org's own transaction (withTenant), so another org's
// response is simply absent. Rows past their expiry are never served, before the sweep deletes them.
import type { Database } from '../db/database.js';

export interface StoredResponse {
  readonly orgId: string;
  readonly responseId: string;
  readonly keyId: string | null;
  readonly model: string;
  /** The response object, serialized (as the client received it). */
  readonly responseJson: string;
  /** The chat messages to continue from: what went upstream (instructions left out), then the answer. */
  readonly conversation: readonly unknown[];
  /** Days to keep it: the org's log retention. */
  readonly retentionDays: number;
}

const INSERT_SQL = `INSERT INTO nemo.stored_responses (org_id, response_id, key_id, model, response, conversation, expires_at)
  VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, now() + make_interval(days => $7::integer))`;
const RESPONSE_SQL = 'SELECT response::text AS json FROM nemo.stored_responses WHERE response_id = $1 AND expires_at > now()';
const CONVERSATION_SQL = 'SELECT conversation FROM nemo.stored_responses WHERE response_id = $1 AND expires_at > now()';
const DELETE_SQL = 'DELETE FROM nemo.stored_responses WHERE response_id = $1 AND expires_at > now()';

/** Ids the gateway never issues cannot be stored: a longer one is answered 404 without a query. */
const MAX_ID_CHARS = 200;

export class StoredResponses {
  constructor(private readonly db: Pick<Database, 'withTenant'>) {}

  async save(row: StoredResponse): Promise<void> {
    const values = [row.orgId, row.responseId, row.keyId, row.model, jsonbSafe(row.responseJson), jsonbSafe(JSON.stringify(row.conversation)), row.retentionDays];
    await this.db.withTenant(row.orgId, (client) => client.query(INSERT_SQL, values));
  }

  /** The response object as JSON text, or undefined when the org has no such (unexpired) response. */
  async responseJson(orgId: string, responseId: string): Promise<string | undefined> {
    if (responseId.length > MAX_ID_CHARS) return undefined;
    const { rows } = await this.db.withTenant(orgId, (client) => client.query<{ json: string }>(RESPONSE_SQL, [responseId]));
    return rows[0]?.json;
  }

  /** The conversation to continue, or undefined when the org has no such (unexpired) response. */
  async conversation(orgId: string, responseId: string): Promise<unknown[] | undefined> {
    if (responseId.length > MAX_ID_CHARS) return undefined;
    const { rows } = await this.db.withTenant(orgId, (client) => client.query<{ conversation: unknown[] }>(CONVERSATION_SQL, [responseId]));
    return rows[0]?.conversation;
  }

  /** True when the org had it. */
  async delete(orgId: string, responseId: string): Promise<boolean> {
    if (responseId.length > MAX_ID_CHARS) return false;
    const { rowCount } = await this.db.withTenant(orgId, (client) => client.query(DELETE_SQL, [responseId]));
    return (rowCount ?? 0) > 0;
  }
}

/** `\u0000` escapes not preceded by another backslash: the one JSON string content jsonb refuses. */
const NUL_ESCAPE = /(?<!\\)((?:\\\\)*)\\u0000/g;

/**
 * JSON text jsonb takes: a model that writes NUL must not fail the answer it is part of, so the
 * stored copy has U+FFFD in its place (what the client received keeps it).
 */
export function jsonbSafe(json: string): string {
  return json.includes('\\u0000') ? json.replace(NUL_ESCAPE, '$1\\ufffd') : json;
}
