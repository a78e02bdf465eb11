// Teams: create one with its limits and caps, list them (paged), change a team's name and limits
// (they apply at once to every key of the team).
import { useState } from 'preact/hooks';
import { orgPath, type Api, type List } from '../api';
import { Dialog, ErrorMessage, Field, LoadState, Pager, Section, Table, useLoad, usePages, useSubmit } from '../components';
import { time } from '../format';
import { LimitFields, limitBody, limitSummary, limitText, NO_LIMITS } from '../limits';
import type { PageProps } from '../page-props';
import type { Team } from '../types';

export function Teams({ api, orgId }: PageProps) {
  const loaded = useLoad(async () => (await api.get<List<Team>>(orgPath(orgId, '/teams'))).data, [orgId]);
  return (
    <>
      <CreateTeam api={api} orgId={orgId} onCreated={loaded.reload} />
      <LoadState loaded={loaded}>{(teams) => <TeamList api={api} orgId={orgId} teams={teams} reload={loaded.reload} />}</LoadState>
    </>
  );
}

function CreateTeam({ api, orgId, onCreated }: { api: Api; orgId: string; onCreated(): void }) {
  const [name, setName] = useState('');
  const [limits, setLimits] = useState(NO_LIMITS);
  const [created, setCreated] = useState<string>();
  const { busy, error, submit } = useSubmit(async () => {
    const team = await api.post<Team>(orgPath(orgId, '/teams'), { name, ...limitBody(limits) });
    setCreated(`Team "${team.name}" created.`);
    setName('');
    setLimits(NO_LIMITS);
    onCreated();
  });
  return (
    <Section title="Create a team">
      <form onSubmit={submit} class="form-grid">
        <Field label="Name">
          <input name="name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <LimitFields value={limits} onChange={setLimits} />
        <ErrorMessage error={error} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Create team
          </button>
          <span role="status" class="muted">
            {created}
          </span>
        </div>
      </form>
    </Section>
  );
}

function TeamList({ api, orgId, teams, reload }: { api: Api; orgId: string; teams: Team[]; reload(): void }) {
  const paged = usePages(teams);
  const [editing, setEditing] = useState<Team>();
  return (
    <Section title={`Teams (${teams.length})`}>
      <Table label="Teams" head={['Name', 'Limits and caps', 'Guardrail overrides', 'Created', 'Actions']} empty={teams.length === 0 && 'No teams yet.'}>
        {paged.rows.map((t) => (
          <tr key={t.id}>
            <td>{t.name}</td>
            <td>{limitSummary(t)}</td>
            <td>{t.guardrail_policy === null ? 'none' : 'yes (see Guardrails)'}</td>
            <td>{time(t.created_at)}</td>
            <td>
              <button type="button" class="quiet" onClick={() => setEditing(t)} aria-label={`Edit team ${t.name}`}>
                Edit
              </button>
            </td>
          </tr>
        ))}
      </Table>
      <Pager label="Teams" {...paged} />
      {editing && <EditTeam api={api} orgId={orgId} team={editing} onClose={() => setEditing(undefined)} onSaved={reload} />}
    </Section>
  );
}

function EditTeam({ api, orgId, team, onClose, onSaved }: { api: Api; orgId: string; team: Team; onClose(): void; onSaved(): void }) {
  const [name, setName] = useState(team.name);
  const [limits, setLimits] = useState(limitText(team));
  const { busy, error, submit } = useSubmit(async () => {
    await api.patch(orgPath(orgId, `/teams/${team.id}`), { name, ...limitBody(limits) });
    onSaved();
    onClose();
  });
  return (
    <Dialog title={`Edit team ${team.name}`} onClose={onClose}>
      <form onSubmit={submit} class="form-grid">
        <Field label="Name">
          <input name="name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
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
