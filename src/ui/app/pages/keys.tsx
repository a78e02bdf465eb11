// Keys: create one (role, team, allowed models, expiry, limits; the secret is shown once, with a
// copy button), list them (paged), change a key's name and limits, revoke one.
import { useEffect, useRef, useState } from 'preact/hooks';
import { orgPath, type Api, type List } from '../api';
import { CopyButton, Dialog, ErrorMessage, Field, LoadState, Pager, Section, Table, useLoad, usePages, useSubmit } from '../components';
import { time } from '../format';
import { LimitFields, limitBody, limitSummary, limitText, NO_LIMITS, type LimitText } from '../limits';
import type { PageProps } from '../page-props';
import type { Key, Model, Team } from '../types';

interface KeysData {
  keys: Key[];
  teams: Team[];
  models: Model[];
}

export function Keys({ api, orgId }: PageProps) {
  const loaded = useLoad(async (): Promise<KeysData> => {
    const [keys, teams, models] = await Promise.all([
      api.get<List<Key>>(orgPath(orgId, '/keys')),
      api.get<List<Team>>(orgPath(orgId, '/teams')),
      api.get<List<Model>>('/v1/models'),
    ]);
    return { keys: keys.data, teams: teams.data, models: models.data };
  }, [orgId]);
  const [secret, setSecret] = useState<{ name: string; key: string }>();
  return (
    <LoadState loaded={loaded}>
      {(data) => (
        <>
          {secret !== undefined ? (
            <NewSecret name={secret.name} secret={secret.key} onDone={() => setSecret(undefined)} />
          ) : (
            <CreateKey
              api={api}
              orgId={orgId}
              data={data}
              onCreated={(created) => {
                setSecret({ name: created.name, key: created.key });
                loaded.reload();
              }}
            />
          )}
          <KeyList api={api} orgId={orgId} data={data} reload={loaded.reload} />
        </>
      )}
    </LoadState>
  );
}

function CreateKey({ api, orgId, data, onCreated }: { api: Api; orgId: string; data: KeysData; onCreated(key: Key & { key: string }): void }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState<'member' | 'admin'>('member');
  const [team, setTeam] = useState('');
  const [models, setModels] = useState<string[]>([]);
  const [expires, setExpires] = useState('');
  const [limits, setLimits] = useState<LimitText>(NO_LIMITS);
  const { busy, error, submit } = useSubmit(async () => {
    const body = {
      name,
      role,
      team_id: team === '' ? null : team,
      allowed_models: models.length === 0 ? null : models,
      expires_at: expires === '' ? null : new Date(expires).toISOString(),
      ...limitBody(limits),
    };
    onCreated(await api.post<Key & { key: string }>(orgPath(orgId, '/keys'), body));
  });
  const toggle = (id: string, on: boolean) => setModels((list) => (on ? [...list, id] : list.filter((m) => m !== id)));
  return (
    <Section title="Create a key">
      <form onSubmit={submit} class="form-grid">
        <Field label="Name">
          <input name="name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Role" hint="Admin keys may use this console and the admin API.">
          <select name="role" value={role} onChange={(e) => setRole(e.currentTarget.value as 'member' | 'admin')}>
            <option value="member">member</option>
            <option value="admin">admin</option>
          </select>
        </Field>
        <Field label="Team">
          <select name="team_id" value={team} onChange={(e) => setTeam(e.currentTarget.value)}>
            <option value="">(no team)</option>
            {data.teams.map((t) => (
              <option value={t.id} key={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Expires (your local time; blank: never)">
          <input name="expires_at" type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
        </Field>
        <fieldset class="models">
          <legend>Allowed models (none ticked: every model the organization allows)</legend>
          {data.models.map((m) => (
            <label key={m.id}>
              <input type="checkbox" name="allowed_models" value={m.id} checked={models.includes(m.id)} onChange={(e) => toggle(m.id, e.currentTarget.checked)} /> {m.id}
            </label>
          ))}
        </fieldset>
        <LimitFields value={limits} onChange={setLimits} />
        <ErrorMessage error={error} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            {busy ? 'Creating…' : 'Create key'}
          </button>
        </div>
      </form>
    </Section>
  );
}

function NewSecret({ name, secret, onDone }: { name: string; secret: string; onDone(): void }) {
  const field = useRef<HTMLInputElement>(null);
  // Once, when it appears: the list reloading behind it must not pull the focus back.
  useEffect(() => field.current?.focus(), []);
  return (
    <Section title={`Key "${name}" created`}>
      <p class="notice">
        Copy the secret now: it is shown only this once, and the gateway keeps only its hash.
      </p>
      <div class="secret">
        <Field label="Secret">
          <input name="secret" readOnly value={secret} ref={field} onFocus={(e) => e.currentTarget.select()} />
        </Field>
        <CopyButton text={secret} label="Copy secret" />
      </div>
      <div class="actions">
        <button type="button" onClick={onDone}>
          Done, I have copied it
        </button>
      </div>
    </Section>
  );
}

function KeyList({ api, orgId, data, reload }: { api: Api; orgId: string; data: KeysData; reload(): void }) {
  const sorted = [...data.keys].sort((a, b) => Number(a.revoked_at !== null) - Number(b.revoked_at !== null) || b.created_at.localeCompare(a.created_at));
  const paged = usePages(sorted);
  const [editing, setEditing] = useState<Key>();
  const [revoking, setRevoking] = useState<Key>();
  const teamName = (id: string | null) => (id === null ? '—' : data.teams.find((t) => t.id === id)?.name ?? id.slice(0, 8));
  return (
    <Section title={`Keys (${data.keys.length})`}>
      <Table label="Keys" head={['Name', 'Prefix', 'Role', 'Team', 'Models', 'Limits and caps', 'Status', 'Created', 'Actions']} empty={data.keys.length === 0 && 'No keys yet.'}>
        {paged.rows.map((k) => (
          <tr key={k.id}>
            <td>{k.name}</td>
            <td>
              <code>{k.prefix}…</code>
            </td>
            <td>{k.role}</td>
            <td>{teamName(k.team_id)}</td>
            <td>{k.allowed_models === null ? 'all' : k.allowed_models.join(', ')}</td>
            <td class="soft">{limitSummary(k)}</td>
            <td class="soft">{status(k)}</td>
            <td>{time(k.created_at)}</td>
            <td>
              {k.revoked_at === null && (
                <div class="row-actions">
                  <button type="button" class="quiet" onClick={() => setEditing(k)} aria-label={`Edit key ${k.name}`}>
                    Edit
                  </button>
                  <button type="button" class="danger" onClick={() => setRevoking(k)} aria-label={`Revoke key ${k.name}`}>
                    Revoke
                  </button>
                </div>
              )}
            </td>
          </tr>
        ))}
      </Table>
      <Pager label="Keys" {...paged} />
      {editing && <EditKey api={api} orgId={orgId} keyRow={editing} onClose={() => setEditing(undefined)} onSaved={reload} />}
      {revoking && <RevokeKey api={api} orgId={orgId} keyRow={revoking} onClose={() => setRevoking(undefined)} onRevoked={reload} />}
    </Section>
  );
}

function status(key: Key): string {
  if (key.revoked_at !== null) return `revoked ${time(key.revoked_at)}`;
  if (key.expires_at !== null) return Date.parse(key.expires_at) <= Date.now() ? `expired ${time(key.expires_at)}` : `active, expires ${time(key.expires_at)}`;
  return 'active';
}

function EditKey({ api, orgId, keyRow, onClose, onSaved }: { api: Api; orgId: string; keyRow: Key; onClose(): void; onSaved(): void }) {
  const [name, setName] = useState(keyRow.name);
  const [limits, setLimits] = useState(limitText(keyRow));
  const { busy, error, submit } = useSubmit(async () => {
    await api.patch(orgPath(orgId, `/keys/${keyRow.id}`), { name, ...limitBody(limits) });
    onSaved();
    onClose();
  });
  return (
    <Dialog title={`Edit key ${keyRow.name}`} onClose={onClose}>
      <form onSubmit={submit} class="form-grid">
        <Field label="Name">
          <input name="name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <p class="hint">Allowed models are fixed when a key is created.</p>
        <LimitFields value={limits} onChange={setLimits} />
        <ErrorMessage error={error} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function RevokeKey({ api, orgId, keyRow, onClose, onRevoked }: { api: Api; orgId: string; keyRow: Key; onClose(): void; onRevoked(): void }) {
  const { busy, error, submit } = useSubmit(async () => {
    await api.post(orgPath(orgId, `/keys/${keyRow.id}/revoke`));
    onRevoked();
    onClose();
  });
  return (
    <Dialog title={`Revoke key ${keyRow.name}?`} onClose={onClose}>
      <form onSubmit={submit}>
        <p>Requests with this key are refused within a second on every instance. A revoked key cannot be restored.</p>
        <ErrorMessage error={error} />
        <div class="actions">
          <button type="submit" class="danger" disabled={busy}>
            Revoke {keyRow.name}
          </button>
          <button type="button" class="quiet" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}
