// The per-chunk histogram must expose exactly what prom-client's Histogram would for the same values.
import { Histogram, Registry } from 'prom-client';
import { expect, it } from 'vitest';
import { HotHistogram } from '../../../src/metrics/core.js';
import { seededRandom } from '../../support/seeded-random.js';

it('exposes the same text as a prom-client Histogram fed the same observations', async () => {
  const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotHistogram('gap_seconds', 'Gaps.', buckets, ours);
  const reference = new Histogram({ name: 'gap_seconds', help: 'Gaps.', buckets, registers: [theirs] });
  const random = seededRandom(5);
  for (let i = 0; i < 2_000; i++) {
    // Bucket edges exactly, below the first, above the last, and in between.
    const value = i % 7 === 0 ? buckets[i % buckets.length]! : random() * random() * 8;
    hot.observe(value);
    reference.observe(value);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
  // A reset hides the series until the next observation, in both.
  ours.resetMetrics();
  theirs.resetMetrics();
  expect(await ours.metrics()).toBe(await theirs.metrics());
  hot.observe(0.02);
  reference.observe(0.02);
  expect(await ours.metrics()).toBe(await theirs.metrics());
});
