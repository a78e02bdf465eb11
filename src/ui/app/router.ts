// Client-side routes under /ui: history.pushState on in-app links, popstate on back and forward.
// The gateway answers index.html for every /ui/<page> path, so a reload lands on the same page.
import { useEffect, useState } from 'preact/hooks';

export interface Page {
  readonly path: string;
  readonly title: string;
  /** Only the master key sees it in the menu. */
  readonly platformOnly?: boolean;
}

export const PAGES: readonly Page[] = [
  { path: '/ui/', title: 'Overview' },
  { path: '/ui/keys', title: 'Keys' },
  { path: '/ui/teams', title: 'Teams' },
  { path: '/ui/usage', title: 'Usage and ledger' },
  { path: '/ui/logs', title: 'Request logs' },
  { path: '/ui/guardrails', title: 'Guardrails' },
  { path: '/ui/platform', title: 'Platform', platformOnly: true },
];

/** The page a location shows: /ui and /ui/ are the overview; an unknown path is undefined. */
export function pageOf(pathname: string): Page | undefined {
  const path = pathname === '/ui' || pathname === '/ui/' ? '/ui/' : pathname.replace(/\/$/, '');
  return PAGES.find((p) => p.path === path);
}

const listeners = new Set<() => void>();

export function navigate(path: string): void {
  if (path === location.pathname) return;
  history.pushState(null, '', path);
  for (const listener of listeners) listener();
}

export function useLocation(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

/** A click that should stay in the app: plain left click, no modifier (those open a new tab). */
export function isPlainClick(event: MouseEvent): boolean {
  return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
}
