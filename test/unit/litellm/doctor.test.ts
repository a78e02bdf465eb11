// The drift watch behind /readyz: the catalog is read at most once per interval, a failed read is
// not remembered, and the check fails with the problems named.
import { describe, expect, it } from 'vitest';
import { LiteLLMSchemaWatch } from '../../../src/litellm/doctor.js';
import { LITELLM_COLUMNS } from '../../../src/litellm/schema-contract.js';

/** Catalog rows for every column of the contract, minus the ones left out. */
function catalog(leftOut: string[] = []) {
  return Object.entries(LITELLM_COLUMNS).flatMap(([table, columns]) =>
    Object.entries(columns)
      .filter(([column]) => !leftOut.includes(`${table}.${column}`))
      .map(([column, types]) => ({ table, column, type: types[0], owner_can_read: true, app_privileged: false })),
  );
}

function fakeDb(answers: Array<unknown[] | Error>) {
  const state = { calls: 0 };
  return {
    state,
    db: {
      query: async () => {
        const answer = answers[Math.min(state.calls++, answers.length - 1)]!;
        if (answer instanceof Error) throw answer;
        return { rows: answer } as never;
      },
    },
  };
}

describe('LiteLLMSchemaWatch', () => {
  it('reads the catalog once per interval and reports a missing column by name', async () => {
    const clock = { t: 0 };
    const { db, state } = fakeDb([catalog(['LiteLLM_TeamTable.blocked'])]);
    const seen: string[][] = [];
    const watch = new LiteLLMSchemaWatch(db, 1_000, (r) => seen.push([...r.problems]), () => clock.t);
    await expect(watch.check()).rejects.toThrow('column public."LiteLLM_TeamTable".blocked is missing');
    await expect(watch.check()).rejects.toThrow();
    expect(state.calls).toBe(1);
    clock.t = 1_000;
    await expect(watch.check()).rejects.toThrow();
    expect(state.calls).toBe(2);
    expect(seen).toEqual([['column public."LiteLLM_TeamTable".blocked is missing'], ['column public."LiteLLM_TeamTable".blocked is missing']]);
  });

  it('passes on a complete catalog, and names a retyped column and an app-role privilege', async () => {
    expect(await new LiteLLMSchemaWatch(fakeDb([catalog()]).db, 1_000).report()).toEqual({ ok: true, problems: [] });
    // A privilege is the table's: every row of it carries the flag.
    const rows = catalog().map((r) => (r.table !== 'LiteLLM_VerificationToken' ? r : { ...r, app_privileged: true, type: r.column === 'expires' ? 'text' : r.type }));
    const report = await new LiteLLMSchemaWatch(fakeDb([rows]).db, 1_000).report();
    expect(report.problems).toEqual([
      'nemo_app holds a privilege on public."LiteLLM_VerificationToken": revoke it (the app role reads LiteLLM\'s rows only through nemo\'s functions)',
      'column public."LiteLLM_VerificationToken".expires is text, expected one of timestamp, timestamptz',
    ]);
  });

  it('does not remember a failed read', async () => {
    const { db, state } = fakeDb([new Error('connection refused'), catalog()]);
    const watch = new LiteLLMSchemaWatch(db, 60_000);
    await expect(watch.check()).rejects.toThrow('connection refused');
    await expect(watch.check()).resolves.toBeUndefined();
    expect(state.calls).toBe(2);
  });
});
