// The console's building blocks: loading data, showing the API's errors, tables that scroll on a
// phone and page long lists, labelled fields, a modal dialog, a copy button.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

export interface Loaded<T> {
  readonly data: T | undefined;
  readonly error: unknown;
  readonly loading: boolean;
  reload(): void;
}

/** Runs `load` now and whenever `deps` change; a late answer to an older call is dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => current && setState({ data, error: undefined, loading: false }),
      (error: unknown) => current && setState({ data: undefined, error, loading: false }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { ...state, reload };
}

/** An error as the API worded it, with its status and code. */
export function ErrorMessage({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  const api = error instanceof ApiError ? error : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div class="error" role="alert">
      <p>{message}</p>
      {api !== undefined && api.status > 0 && (
        <p class="error-detail">
          HTTP {api.status}
          {api.code !== undefined && ` · ${api.code}`}
          {api.param ? ` · ${api.param}` : ''}
        </p>
      )}
    </div>
  );
}

/** What a load shows while it runs or when it failed; the children once there is data. */
export function LoadState<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (loaded.error !== undefined) return <ErrorMessage error={loaded.error} />;
  if (loaded.data === undefined) return <p class="muted" role="status">Loading…</p>;
  return <>{children(loaded.data)}</>;
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  const id = useId();
  return (
    <section aria-labelledby={id} class="card">
      <div class="section-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/**
 * A table in a region that scrolls sideways on narrow screens (focusable, so keys scroll it too),
 * named "<label> table" apart from the section around it.
 */
export function Table({ label, head, children, empty }: { label: string; head: string[]; children: ComponentChildren; empty?: string | false }) {
  return (
    <div class="table-wrap" role="region" aria-label={`${label} table`} tabindex={0}>
      <table>
        <thead>
          <tr>
            {head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {children}
          {empty && (
            <tr>
              <td colSpan={head.length} class="muted">
                {empty}
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

export const PAGE_SIZE = 20;

/** One page of a list the API answered whole. */
export function usePages<T>(rows: readonly T[], size = PAGE_SIZE): { rows: readonly T[]; page: number; pages: number; setPage(page: number): void } {
  const [page, setPage] = useState(0);
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const current = Math.min(page, pages - 1);
  return { rows: rows.slice(current * size, current * size + size), page: current, pages, setPage };
}

export function Pager({ label, page, pages, setPage }: { label: string; page: number; pages: number; setPage(page: number): void }) {
  if (pages <= 1) return null;
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={() => setPage(page - 1)} disabled={page === 0}>
        Previous
      </button>
      <span aria-live="polite">
        Page {page + 1} of {pages}
      </span>
      <button type="button" onClick={() => setPage(page + 1)} disabled={page >= pages - 1}>
        Next
      </button>
    </nav>
  );
}

/** Older/newer paging of a list the API pages with a cursor. */
export function CursorPager({ label, hasNewer, hasOlder, onNewest, onOlder }: { label: string; hasNewer: boolean; hasOlder: boolean; onNewest(): void; onOlder(): void }) {
  if (!hasNewer && !hasOlder) return null;
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={onNewest} disabled={!hasNewer}>
        Newest
      </button>
      <button type="button" onClick={onOlder} disabled={!hasOlder}>
        Older
      </button>
    </nav>
  );
}

export function Field({ label, hint, children }: { label: string; hint?: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="field-label">{label}</span>
      {children}
      {hint && <span class="hint">{hint}</span>}
    </label>
  );
}

/** A modal dialog (the browser's own: focus is kept inside, Escape closes it). */
export function Dialog({ title, onClose, children }: { title: string; onClose(): void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog !== null && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby={id} onClose={onClose}>
      <div class="dialog-head">
        <h2 id={id}>{title}</h2>
        <button type="button" class="quiet" onClick={onClose}>
          Close
        </button>
      </div>
      {children}
    </dialog>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState<string>();
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('Copied to the clipboard.');
    } catch {
      setDone('Copying was refused by the browser: select the text and copy it.');
    }
  };
  return (
    <>
      <button type="button" onClick={() => void copy()}>
        {label}
      </button>
      <span class="muted" role="status">
        {done}
      </span>
    </>
  );
}

/** A submit handler that shows the error it threw and blocks double submits while it runs. */
export function useSubmit(action: () => Promise<void>): { busy: boolean; error: unknown; submit(event: Event): void; setError(error: unknown): void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = (event: Event) => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(undefined);
    action().then(
      () => setBusy(false),
      (err: unknown) => {
        setBusy(false);
        setError(err);
      },
    );
  };
  return { busy, error, submit, setError };
}
