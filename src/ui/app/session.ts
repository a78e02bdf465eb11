// Who is signed in: the key, what kind it is, and the org the pages show. Kept in sessionStorage
// only (gone when the tab closes, never sent anywhere but the Authorization header), never in
// localStorage or a cookie.

export interface Session {
  readonly key: string;
  /** `platform`: the master key, which may open any org; `org`: an org's admin key. */
  readonly kind: 'org' | 'platform';
  /** The org the pages show ('' for a platform with no org yet). */
  readonly orgId: string;
  readonly orgName: string;
}

const STORAGE_KEY = 'nemo.console.session';

export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (raw === null) return undefined;
    const value = JSON.parse(raw) as Partial<Session>;
    if (typeof value.key !== 'string' || (value.kind !== 'org' && value.kind !== 'platform')) return undefined;
    return { key: value.key, kind: value.kind, orgId: String(value.orgId ?? ''), orgName: String(value.orgName ?? '') };
  } catch {
    return undefined;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
