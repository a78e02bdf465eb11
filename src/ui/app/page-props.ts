// What every page of the console is given by the shell.
import type { Api } from './api';
import type { Session } from './session';
import type { Org } from './types';

export interface PageProps {
  readonly api: Api;
  readonly session: Session;
  /** The org the page shows (always set: the shell shows no org page without one). */
  readonly orgId: string;
  /** Platform only: switch the console to another org, or tell the shell the org list changed. */
  openOrg(org: Org): void;
  orgsChanged(): void;
}
