import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-postgres.ts'],
    // uWebSockets.js is a native addon that must not load into several worker threads of one process.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
