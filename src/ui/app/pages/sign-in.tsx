// Signing in: an org admin key (its own org) or the platform master key (every org, and the
// Platform page). The key is checked against GET /admin/v1/orgs and kept in sessionStorage only.
import { useState } from 'preact/hooks';
import { Api, type List } from '../api';
import { ErrorMessage, Field, useSubmit } from '../components';
import type { Session } from '../session';
import type { Org } from '../types';

export function SignIn({ onSignedIn }: { onSignedIn(session: Session): void }) {
  const [key, setKey] = useState('');
  const [kind, setKind] = useState<Session['kind']>('org');
  const { busy, error, submit } = useSubmit(async () => {
    const secret = key.trim();
    if (secret === '') throw new Error('Enter a key.');
    const orgs = (await new Api(secret).get<List<Org>>('/admin/v1/orgs')).data;
    if (kind === 'org' && orgs.length !== 1) {
      throw new Error(`This key sees ${orgs.length} organizations, so it is the platform master key: choose "Platform master key".`);
    }
    const first = orgs[0];
    onSignedIn({ key: secret, kind, orgId: first?.id ?? '', orgName: first?.name ?? '' });
  });
  return (
    <main id="main" class="sign-in">
      <h1>NemoRouter console</h1>
      <form class="card" onSubmit={submit} aria-describedby="sign-in-note">
        <h2>Sign in</h2>
        <fieldset class="choice">
          <legend>Key</legend>
          <label>
            <input type="radio" name="kind" value="org" checked={kind === 'org'} onChange={() => setKind('org')} /> Organization admin key
          </label>
          <label>
            <input type="radio" name="kind" value="platform" checked={kind === 'platform'} onChange={() => setKind('platform')} /> Platform master key
          </label>
        </fieldset>
        <Field label="API key">
          <input name="key" type="password" autoComplete="off" spellcheck={false} required value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </Field>
        <p id="sign-in-note" class="hint">
          The key stays in this browser tab (session storage) and goes only to this gateway's admin API. Closing the tab or signing out forgets it.
        </p>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
