import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-postgres.ts'],
    // uWebSockets.js is a native addon that must not load into several worker threads of one process.
    pool: 'forks',
    testTimeout: 20_000,
    // Gateways the suites stop have no load balancer to tell (shutdown tests set their own).
    env: { NEMO_DRAIN_DELAY_MS: '0' },
    hookTimeout: 30_000,
  },
});
