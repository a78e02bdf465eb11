// The ledger as the suites run it. A credit lease gives back what it did not use when its lifetime
// ends; the suites use a short one, so that `held` is back to 0 soon after the last request, as
// with per-request holds, and a test can wait for it. NEMO_LEDGER_MODE=hold (CI's pass against the
// machine's PostgreSQL) runs the suites on per-request holds instead.
export const TEST_LEASE_LIFETIME_MS = 250;

export function withTestLedger(config: Record<string, unknown>): Record<string, unknown> {
  const ledger = (config.ledger ?? {}) as Record<string, unknown>;
  return { ...config, ledger: { ...ledger, lease: { lifetimeMs: TEST_LEASE_LIFETIME_MS, ...(ledger.lease as object | undefined) } } };
}
