// The request path's counters and histograms must expose what prom-client's would for the same
// operations: the same text and JSON, series shown from their first use, resets included.
import { Counter, Histogram, Registry } from 'prom-client';
import { expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../../../src/metrics/core.js';
import { seededRandom } from '../../support/seeded-random.js';

/** prom-client's JSON, without its exemplar slots (null: the gateway records no exemplars). */
async function asJson(registry: Registry): Promise<unknown> {
  return JSON.parse(JSON.stringify(await registry.getMetricsAsJSON(), (key, value: unknown) => (key === 'exemplar' ? undefined : value)));
}

const ROUTES = ['/v1/chat/completions', '/v1/messages', 'route "quoted" \\ back\nslash'];
const OUTCOMES = ['ok', 'error', 'timeout'];

it('a labelled counter reads as a prom-client Counter given the same increments', async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotCounter('attempts_total', 'Attempts.', ['route', 'outcome'], ours);
  const reference = new Counter({ name: 'attempts_total', help: 'Attempts.', labelNames: ['route', 'outcome'], registers: [theirs] });
  const random = seededRandom(11);
  expect(await ours.metrics()).toBe(await theirs.metrics());
  for (let i = 0; i < 500; i++) {
    const route = ROUTES[Math.floor(random() * ROUTES.length)]!;
    const outcome = OUTCOMES[Math.floor(random() * OUTCOMES.length)]!;
    const by = i % 5 === 0 ? 2.5 : 1;
    hot.labels(route, outcome).inc(by);
    reference.labels(route, outcome).inc(by);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
  expect(await asJson(ours)).toEqual(await asJson(theirs));
  // A reset hides labelled series until they are used again; a child resolved before still counts.
  const resolved = hot.labels(ROUTES[0]!, 'ok');
  ours.resetMetrics();
  theirs.resetMetrics();
  expect(await ours.metrics()).toBe(await theirs.metrics());
  resolved.inc();
  reference.labels(ROUTES[0]!, 'ok').inc();
  expect(await ours.metrics()).toBe(await theirs.metrics());
});

it('a labelled series appears on first use, not when its child is resolved', async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotCounter('lookups_total', 'Lookups.', ['result'], ours);
  new Counter({ name: 'lookups_total', help: 'Lookups.', labelNames: ['result'], registers: [theirs] });
  const hits = hot.labels('hit');
  hot.labels('miss');
  new HotHistogram('wait_seconds', 'Waits.', [1, 2], ours, ['route']).labels('/x');
  new Histogram({ name: 'wait_seconds', help: 'Waits.', buckets: [1, 2], labelNames: ['route'], registers: [theirs] });
  expect(await ours.metrics()).toBe(await theirs.metrics());
  hits.inc();
  expect(await ours.metrics()).toMatch(/^lookups_total\{result="hit"\} 1$/m);
  expect(await ours.metrics()).not.toMatch(/result="miss"/);
});

it('an unlabelled counter shows 0 before its first increment, as prom-client does', async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotCounter('things_total', 'Things.', [], ours);
  const reference = new Counter({ name: 'things_total', help: 'Things.', registers: [theirs] });
  expect(await ours.metrics()).toBe(await theirs.metrics());
  hot.inc();
  hot.inc(3);
  reference.inc();
  reference.inc(3);
  expect(await ours.metrics()).toBe(await theirs.metrics());
});

it('a labelled histogram reads as a prom-client Histogram given the same observations', async () => {
  const buckets = [0.001, 0.01, 0.1, 1, 10];
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotHistogram('duration_seconds', 'Durations.', buckets, ours, ['route']);
  const reference = new Histogram({ name: 'duration_seconds', help: 'Durations.', buckets, labelNames: ['route'], registers: [theirs] });
  const random = seededRandom(12);
  for (let i = 0; i < 1_000; i++) {
    const route = ROUTES[i % 7 === 0 ? 2 : Math.floor(random() * 2)]!;
    const value = i % 9 === 0 ? buckets[i % buckets.length]! : random() * random() * 20;
    hot.labels(route).observe(value);
    reference.labels(route).observe(value);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
  // JSON (prom-client's get()): each value carries its series' labels.
  expect(await asJson(ours)).toEqual(await asJson(theirs));
  ours.resetMetrics();
  theirs.resetMetrics();
  expect(await ours.metrics()).toBe(await theirs.metrics());
});

it('refuses the wrong number of label values and a decrease, as prom-client does', () => {
  const hot = new HotCounter('checked_total', 'Checked.', ['a', 'b'], new Registry());
  expect(() => hot.labels('only-one')).toThrow(/label values/);
  expect(() => hot.labels('x', 'y').inc(-1)).toThrow(/decrease/);
  expect(() => hot.labels('x', 'y').inc(Number.NaN)).toThrow(TypeError);
  expect(hot.labels('x', 'y').value).toBe(0);
  const histogram = new HotHistogram('checked_seconds', 'Checked.', [1], new Registry(), ['a']);
  expect(() => histogram.labels('x').observe(Number.POSITIVE_INFINITY)).toThrow(TypeError);
  expect(histogram.labels('x').sum).toBe(0);
});
