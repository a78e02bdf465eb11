// The NemoRouter admin console: sign-in, then a shell (header, menu, the page of the current
// /ui/... path). Every page reads and writes through the admin API with the signed-in key; the
// console itself holds no privilege and no server-side session.
import { render, type JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Api, type List } from './api';
import { ErrorMessage, useLoad } from './components';
import type { PageProps } from './page-props';
import { Guardrails } from './pages/guardrails';
import { Keys } from './pages/keys';
import { Logs } from './pages/logs';
import { Overview } from './pages/overview';
import { Platform } from './pages/platform';
import { SignIn } from './pages/sign-in';
import { Teams } from './pages/teams';
import { UsageAndLedger } from './pages/usage';
import { isPlainClick, navigate, pageOf, PAGES, useLocation } from './router';
import { clearSession, loadSession, saveSession, type Session } from './session';
import type { Org } from './types';
import './styles.css';

const PAGE_BODIES: Record<string, (props: PageProps) => JSX.Element> = {
  '/ui/': Overview,
  '/ui/keys': Keys,
  '/ui/teams': Teams,
  '/ui/usage': UsageAndLedger,
  '/ui/logs': Logs,
  '/ui/guardrails': Guardrails,
  '/ui/platform': Platform,
};

function App() {
  const [session, setSession] = useState(loadSession);
  if (session === undefined) {
    return (
      <SignIn
        onSignedIn={(next) => {
          saveSession(next);
          setSession(next);
        }}
      />
    );
  }
  const update = (next: Session) => {
    saveSession(next);
    setSession(next);
  };
  const signOut = () => {
    clearSession();
    setSession(undefined);
    history.replaceState(null, '', '/ui/');
  };
  return <Shell session={session} update={update} signOut={signOut} />;
}

function Shell({ session, update, signOut }: { session: Session; update(session: Session): void; signOut(): void }) {
  const path = useLocation();
  const page = pageOf(path);
  const api = new Api(session.key);
  const heading = useRef<HTMLHeadingElement>(null);
  const first = useRef(true);
  const orgs = useLoad(() => (session.kind === 'platform' ? api.get<List<Org>>('/admin/v1/orgs').then((l) => l.data) : Promise.resolve([])), [session.key, session.kind]);

  useEffect(() => {
    document.title = `${page?.title ?? 'Not found'} · NemoRouter console`;
    // A new page is announced and keyboard focus starts at its heading (not on the first load).
    if (!first.current) heading.current?.focus();
    first.current = false;
  }, [path]);

  const openOrg = (org: Org) => update({ ...session, orgId: org.id, orgName: org.name });
  const menu = PAGES.filter((p) => !p.platformOnly || session.kind === 'platform');
  const Body = page === undefined ? undefined : PAGE_BODIES[page.path];
  const needsOrg = page !== undefined && page.path !== '/ui/platform';

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">NemoRouter</span>
        <div class="who">
          {session.kind === 'platform' ? (
            <span class="org-switch">
              <label for="org-switch">Organization</label>
              <select
                id="org-switch"
                value={session.orgId}
                onChange={(e) => {
                  const org = orgs.data?.find((o) => o.id === e.currentTarget.value);
                  if (org) openOrg(org);
                }}
              >
                {session.orgId === '' && <option value="">(none)</option>}
                {(orgs.data ?? [{ id: session.orgId, name: session.orgName, created_at: '' }]).map((o) => (
                  <option value={o.id} key={o.id}>
                    {o.name}
                  </option>
                ))}
              </select>
            </span>
          ) : (
            <span>
              Organization: <strong>{session.orgName}</strong>
            </span>
          )}
          <span class="badge">{session.kind === 'platform' ? 'master key' : 'org admin key'}</span>
          <button type="button" class="quiet" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <nav class="menu" aria-label="Console">
        <ul>
          {menu.map((p) => (
            <li key={p.path}>
              <a
                href={p.path}
                aria-current={p === page ? 'page' : undefined}
                onClick={(e) => {
                  if (!isPlainClick(e)) return;
                  e.preventDefault();
                  navigate(p.path);
                }}
              >
                {p.title}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main">
        <h1 tabIndex={-1} ref={heading}>
          {page?.title ?? 'Page not found'}
        </h1>
        <ErrorMessage error={orgs.error} />
        {page === undefined && <p>There is no console page at {path}.</p>}
        {Body !== undefined && needsOrg && session.orgId === '' && <p>There is no organization yet: create one on the Platform page.</p>}
        {Body !== undefined && (!needsOrg || session.orgId !== '') && (
          <Body key={`${page!.path} ${session.orgId}`} api={api} session={session} orgId={session.orgId} openOrg={openOrg} orgsChanged={orgs.reload} />
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
