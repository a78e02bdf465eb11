// Platform (master key only): every organization (create one, open one), credit top-ups, refunds
// and adjustments applied once per idempotency key, and the models the gateway serves.
import { useState } from 'preact/hooks';
import { orgPath, type Api, type List } from '../api';
import { ErrorMessage, Field, LoadState, Pager, Section, Table, useLoad, usePages, useSubmit } from '../components';
import { credits, parseCredits, time } from '../format';
import type { PageProps } from '../page-props';
import type { Model, Org } from '../types';

export function Platform({ api, session, openOrg, orgsChanged }: PageProps) {
  const orgs = useLoad(async () => (await api.get<List<Org>>('/admin/v1/orgs')).data, []);
  if (session.kind !== 'platform') {
    return <p>The platform view needs the platform master key; this session signed in with an organization admin key.</p>;
  }
  const changed = () => {
    orgs.reload();
    orgsChanged();
  };
  return (
    <>
      <LoadState loaded={orgs}>
        {(list) => (
          <>
            <OrgList orgs={list} current={session.orgId} openOrg={openOrg} />
            <TopUp api={api} orgs={list} current={session.orgId} />
          </>
        )}
      </LoadState>
      <CreateOrg api={api} onCreated={(org) => {
        changed();
        if (session.orgId === '') openOrg(org);
      }} />
      <Models api={api} />
    </>
  );
}

function OrgList({ orgs, current, openOrg }: { orgs: Org[]; current: string; openOrg(org: Org): void }) {
  const paged = usePages(orgs);
  return (
    <Section title={`Organizations (${orgs.length})`}>
      <Table label="Organizations" head={['Name', 'Id', 'Created', 'Actions']} empty={orgs.length === 0 && 'No organizations yet.'}>
        {paged.rows.map((o) => (
          <tr key={o.id}>
            <td>{o.name}</td>
            <td>
              <code>{o.id}</code>
            </td>
            <td>{time(o.created_at)}</td>
            <td>
              {o.id === current ? (
                <span class="muted">open</span>
              ) : (
                <button type="button" class="quiet" onClick={() => openOrg(o)} aria-label={`Open organization ${o.name}`}>
                  Open
                </button>
              )}
            </td>
          </tr>
        ))}
      </Table>
      <Pager label="Organizations" {...paged} />
    </Section>
  );
}

function CreateOrg({ api, onCreated }: { api: Api; onCreated(org: Org): void }) {
  const [name, setName] = useState('');
  const [done, setDone] = useState<string>();
  const { busy, error, submit } = useSubmit(async () => {
    const org = await api.post<Org>('/admin/v1/orgs', { name });
    setDone(`Organization "${org.name}" created.`);
    setName('');
    onCreated(org);
  });
  return (
    <Section title="Create an organization">
      <form onSubmit={submit} class="form-row">
        <Field label="Name">
          <input name="name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <div class="actions">
          <button type="submit" disabled={busy}>
            Create organization
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      <p role="status" class="muted">
        {done}
      </p>
    </Section>
  );
}

const newIdempotencyKey = () => `console-${crypto.randomUUID()}`;

interface CreditAnswer {
  entry_id: number;
  created: boolean;
  available_micros: number;
  held_micros: number;
}

function TopUp({ api, orgs, current }: { api: Api; orgs: Org[]; current: string }) {
  const [org, setOrg] = useState(current || orgs[0]?.id || '');
  const [amount, setAmount] = useState('');
  const [kind, setKind] = useState('topup');
  const [note, setNote] = useState('');
  // Kept until the gateway confirms: a retry after a lost answer reuses it and is applied once.
  const [idempotencyKey, setIdempotencyKey] = useState(newIdempotencyKey);
  const [result, setResult] = useState<string>();
  const { busy, error, submit } = useSubmit(async () => {
    setResult(undefined);
    const amountMicros = parseCredits(amount, 'Amount');
    if (amountMicros === null) throw new Error('Amount: enter an amount of credits.');
    const answer = await api.post<CreditAnswer>(orgPath(org, '/credits'), { amount_micros: amountMicros, idempotency_key: idempotencyKey, kind, ...(note.trim() === '' ? {} : { note }) });
    const name = orgs.find((o) => o.id === org)?.name ?? org;
    setResult(
      answer.created
        ? `Applied to ${name} (ledger entry ${answer.entry_id}). Available now: ${credits(answer.available_micros)} credits.`
        : `Already applied with this idempotency key (ledger entry ${answer.entry_id}): nothing changed. Available: ${credits(answer.available_micros)} credits.`,
    );
    setIdempotencyKey(newIdempotencyKey());
    setAmount('');
    setNote('');
  });
  return (
    <Section title="Add credits">
      <form onSubmit={submit} class="form-grid">
        <Field label="To organization">
          <select name="org" value={org} onChange={(e) => setOrg(e.currentTarget.value)}>
            {orgs.map((o) => (
              <option value={o.id} key={o.id}>
                {o.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Amount (credits)">
          <input name="amount" inputMode="decimal" required value={amount} onInput={(e) => setAmount(e.currentTarget.value)} />
        </Field>
        <Field label="Kind">
          <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="topup">top-up</option>
            <option value="refund">refund</option>
            <option value="adjustment">adjustment (may be negative)</option>
          </select>
        </Field>
        <Field label="Note (optional)">
          <input name="note" maxLength={1000} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
        </Field>
        <div class="wide">
        <Field label="Idempotency key" hint="The same key is applied once, however often it is sent.">
          <input name="idempotency_key" class="long" required maxLength={200} value={idempotencyKey} onInput={(e) => setIdempotencyKey(e.currentTarget.value)} />
        </Field>
        </div>
        <div class="actions">
          <button type="button" class="quiet" onClick={() => setIdempotencyKey(newIdempotencyKey())}>
            New idempotency key
          </button>
          <button type="submit" disabled={busy || org === ''}>
            Add credits
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      <p role="status" class="muted">
        {result}
      </p>
    </Section>
  );
}

function Models({ api }: { api: Api }) {
  const models = useLoad(async () => (await api.get<List<Model>>('/v1/models')).data, []);
  const paged = usePages(models.data ?? []);
  return (
    <Section title="Models">
      <LoadState loaded={models}>
        {(list) => (
          <>
            <Table label="Models" head={['Model', 'Owned by']} empty={list.length === 0 && 'No models configured.'}>
              {paged.rows.map((m) => (
                <tr key={m.id}>
                  <td>
                    <code>{m.id}</code>
                  </td>
                  <td>{m.owned_by}</td>
                </tr>
              ))}
            </Table>
            <Pager label="Models" {...paged} />
          </>
        )}
      </LoadState>
    </Section>
  );
}
