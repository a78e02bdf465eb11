// Guardrails: the org's policy, the teams' and keys' overrides of it (each edited as JSON, checked
// by the API when saved), and the newest guardrail events (rule, action, stage; never the matched
// text). Policy fields: docs/guardrails.md#policy-fields.
import { useState } from 'preact/hooks';
import { orgPath, type Api, type List } from '../api';
import { CursorPager, Dialog, ErrorMessage, Field, LoadState, PAGE_SIZE, Section, Table, useLoad, useSubmit } from '../components';
import { prettyJson, shortId, time } from '../format';
import type { PageProps } from '../page-props';
import type { GuardrailEvent, Key, OrgConfig, Policy, Team } from '../types';

interface Override {
  scope: 'team' | 'key';
  id: string;
  name: string;
  policy: Policy | null;
}

export function Guardrails({ api, orgId }: PageProps) {
  const loaded = useLoad(async () => {
    const [config, teams, keys] = await Promise.all([
      api.get<OrgConfig>(orgPath(orgId, '/config')),
      api.get<List<Team>>(orgPath(orgId, '/teams')),
      api.get<List<Key>>(orgPath(orgId, '/keys')),
    ]);
    const targets: Override[] = [
      ...teams.data.map((t) => ({ scope: 'team' as const, id: t.id, name: t.name, policy: t.guardrail_policy })),
      ...keys.data.filter((k) => k.revoked_at === null).map((k) => ({ scope: 'key' as const, id: k.id, name: k.name, policy: k.guardrail_policy })),
    ];
    return { config, targets, keys: keys.data };
  }, [orgId]);
  return (
    <LoadState loaded={loaded}>
      {({ config, targets, keys }) => (
        <>
          <OrgPolicy api={api} orgId={orgId} policy={config.default_guardrail_policy} onSaved={loaded.reload} />
          <Overrides api={api} orgId={orgId} targets={targets} onSaved={loaded.reload} />
          <Events api={api} orgId={orgId} keyName={(id) => (id === null ? '—' : keys.find((k) => k.id === id)?.name ?? shortId(id))} />
        </>
      )}
    </LoadState>
  );
}

function parsePolicy(text: string, emptyIs: Policy | null): Policy | null {
  if (text.trim() === '') return emptyIs;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`The policy is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (value !== null && (typeof value !== 'object' || Array.isArray(value))) throw new Error('The policy must be a JSON object.');
  return value as Policy | null;
}

function OrgPolicy({ api, orgId, policy, onSaved }: { api: Api; orgId: string; policy: Policy | null; onSaved(): void }) {
  const [text, setText] = useState(prettyJson(policy ?? {}));
  const [saved, setSaved] = useState<string>();
  const { busy, error, submit } = useSubmit(async () => {
    setSaved(undefined);
    await api.patch(orgPath(orgId, '/config'), { default_guardrail_policy: parsePolicy(text, {}) ?? {} });
    setSaved('Policy saved.');
    onSaved();
  });
  return (
    <Section title="Organization policy">
      <form onSubmit={submit}>
        <Field label="Policy (JSON)" hint='For example {"pii": {"email": "redact"}, "deny_words": ["secret project"], "injection": "block"}. {} checks nothing.'>
          <textarea name="default_guardrail_policy" rows={8} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </Field>
        <ErrorMessage error={error} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save policy
          </button>
          <span role="status" class="muted">
            {saved}
          </span>
        </div>
      </form>
    </Section>
  );
}

function Overrides({ api, orgId, targets, onSaved }: { api: Api; orgId: string; targets: Override[]; onSaved(): void }) {
  const [editing, setEditing] = useState<Override>();
  const [choice, setChoice] = useState('');
  const overridden = targets.filter((t) => t.policy !== null);
  const label = (t: Override) => `${t.scope === 'team' ? 'Team' : 'Key'} ${t.name}`;
  return (
    <Section title="Team and key overrides">
      <Table label="Overrides" head={['Applies to', 'Override (JSON)', 'Actions']} empty={overridden.length === 0 && 'No team or key overrides the organization policy.'}>
        {overridden.map((t) => (
          <tr key={t.id}>
            <td>{label(t)}</td>
            <td>
              <code class="wrap">{JSON.stringify(t.policy)}</code>
            </td>
            <td>
              <button type="button" class="quiet" onClick={() => setEditing(t)} aria-label={`Edit the override of ${label(t)}`}>
                Edit
              </button>
            </td>
          </tr>
        ))}
      </Table>
      <form
        class="form-row"
        onSubmit={(e) => {
          e.preventDefault();
          const target = targets.find((t) => `${t.scope}:${t.id}` === choice);
          if (target) setEditing(target);
        }}
      >
        <Field label="Override for">
          <select name="target" value={choice} onChange={(e) => setChoice(e.currentTarget.value)}>
            <option value="">(choose a team or key)</option>
            {targets.map((t) => (
              <option value={`${t.scope}:${t.id}`} key={t.id}>
                {label(t)}
              </option>
            ))}
          </select>
        </Field>
        <div class="actions">
          <button type="submit" disabled={choice === ''}>
            Edit override
          </button>
        </div>
      </form>
      {editing && <EditOverride api={api} orgId={orgId} target={editing} title={label(editing)} onClose={() => setEditing(undefined)} onSaved={onSaved} />}
    </Section>
  );
}

function EditOverride({ api, orgId, target, title, onClose, onSaved }: { api: Api; orgId: string; target: Override; title: string; onClose(): void; onSaved(): void }) {
  const [text, setText] = useState(target.policy === null ? '' : prettyJson(target.policy));
  const { busy, error, submit } = useSubmit(async () => {
    await api.patch(orgPath(orgId, `/${target.scope === 'team' ? 'teams' : 'keys'}/${target.id}`), { guardrail_policy: parsePolicy(text, null) });
    onSaved();
    onClose();
  });
  return (
    <Dialog title={`Guardrail override: ${title}`} onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Override (JSON; blank removes it)" hint="Only the fields given override the organization policy; null switches a detector off.">
          <textarea name="guardrail_policy" rows={8} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </Field>
        <ErrorMessage error={error} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save override
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function Events({ api, orgId, keyName }: { api: Api; orgId: string; keyName(id: string | null): string }) {
  const [cursors, setCursors] = useState<Array<number | undefined>>([undefined]);
  const before = cursors[cursors.length - 1];
  const loaded = useLoad(async () => (await api.get<List<GuardrailEvent>>(orgPath(orgId, '/guardrail-events'), { limit: PAGE_SIZE, before })).data, [orgId, before]);
  return (
    <Section title="Latest guardrail events">
      <LoadState loaded={loaded}>
        {(events) => (
          <>
            <Table label="Guardrail events" head={['Time', 'Rule', 'Action', 'Stage', 'Hits', 'Key', 'Request id']} empty={events.length === 0 && 'No guardrail has fired.'}>
              {events.map((e) => (
                <tr key={e.id}>
                  <td>{time(e.created_at)}</td>
                  <td>{e.rule}</td>
                  <td>{e.action}</td>
                  <td>{e.stage}</td>
                  <td class="num">{e.hits}</td>
                  <td>{keyName(e.key_id)}</td>
                  <td class="wrap">{e.request_id}</td>
                </tr>
              ))}
            </Table>
            <CursorPager
              label="Guardrail events"
              hasNewer={cursors.length > 1}
              hasOlder={events.length === PAGE_SIZE}
              onNewest={() => setCursors([undefined])}
              onOlder={() => setCursors([...cursors, events[events.length - 1]!.id])}
            />
          </>
        )}
      </LoadState>
    </Section>
  );
}
