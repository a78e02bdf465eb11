import { describe, it, expect } from 'vitest';
import type { Deployment, ModelRoute } from '../../../src/config/load.js';
import { DeploymentRouter } from '../../../src/providers/router.js';
import { seededRandom as seeded } from '../../support/seeded-random.js';

function deployment(id: string, weight = 1): Deployment {
  return {
    id,
    encoding: 'o200k_base',
    publicModel: 'gpt',
    provider: 'openai-compatible',
    model: 'gpt-4o-mini',
    baseUrl: `https://${id}.test/v1`,
    apiKey: undefined,
    inputPricePerMTok: 0,
    outputPricePerMTok: 0,
    maxOutputTokens: 4096,
    weight,
    headers: {},
    mock: undefined,
  };
}

function route(...deployments: Deployment[]): ModelRoute {
  return { name: 'gpt', ownedBy: 'test', deployments, maxOutputTokens: 4096 };
}

/** A clock the test moves by hand. */
function clock(start = 0): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('DeploymentRouter.pick', () => {
  it('returns the only deployment, then undefined once it was tried', () => {
    const a = deployment('a');
    const r = route(a);
    const router = new DeploymentRouter(1000, () => 0.5, () => 0);
    expect(router.pick(r, undefined)).toBe(a);
    expect(router.pick(r, new Set())).toBe(a);
    expect(router.pick(r, new Set([a]))).toBeUndefined();
  });

  it('chooses by weight: 3:1 gives about 75% to the heavier one', () => {
    const heavy = deployment('heavy', 3);
    const light = deployment('light', 1);
    const r = route(heavy, light);
    const router = new DeploymentRouter(1000, seeded(42), () => 0);
    let heavyCount = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) if (router.pick(r, undefined) === heavy) heavyCount++;
    expect(heavyCount / n).toBeGreaterThan(0.73);
    expect(heavyCount / n).toBeLessThan(0.77);
  });

  it('maps the random number onto cumulative weights', () => {
    const a = deployment('a', 3);
    const b = deployment('b', 1);
    const r = route(a, b);
    const pickWith = (x: number) => new DeploymentRouter(1000, () => x, () => 0).pick(r, undefined);
    expect(pickWith(0)).toBe(a);
    expect(pickWith(0.74)).toBe(a);
    expect(pickWith(0.76)).toBe(b);
    expect(pickWith(0.999999)).toBe(b);
  });

  it('skips tried deployments', () => {
    const a = deployment('a');
    const b = deployment('b');
    const c = deployment('c');
    const r = route(a, b, c);
    const router = new DeploymentRouter(1000, seeded(7), () => 0);
    for (let i = 0; i < 200; i++) {
      const picked = router.pick(r, new Set([a, c]));
      expect(picked).toBe(b);
    }
    for (let i = 0; i < 200; i++) expect([b, c]).toContain(router.pick(r, new Set([a])));
  });

  it('returns undefined when every deployment was tried', () => {
    const a = deployment('a');
    const b = deployment('b');
    const router = new DeploymentRouter(1000, () => 0, () => 0);
    expect(router.pick(route(a, b), new Set([a, b]))).toBeUndefined();
  });

  it('skips a failed deployment until cooldownMs has passed', () => {
    const a = deployment('a');
    const b = deployment('b');
    const r = route(a, b);
    const time = clock(5_000);
    // random 0 always lands on the first eligible deployment.
    const router = new DeploymentRouter(1000, () => 0, time.now);
    expect(router.pick(r, undefined)).toBe(a);
    router.markFailed(a);
    expect(router.isCooling(a)).toBe(true);
    expect(router.pick(r, undefined)).toBe(b);
    time.advance(999);
    expect(router.pick(r, undefined)).toBe(b);
    time.advance(1);
    expect(router.isCooling(a)).toBe(false);
    expect(router.pick(r, undefined)).toBe(a);
  });

  it('never picks a cooling deployment while a healthy untried one exists', () => {
    const a = deployment('a', 100);
    const b = deployment('b', 1);
    const r = route(a, b);
    const router = new DeploymentRouter(1000, seeded(3), () => 0);
    router.markFailed(a);
    for (let i = 0; i < 500; i++) expect(router.pick(r, undefined)).toBe(b);
  });

  it('still returns a cooling deployment when every untried one is cooling', () => {
    const a = deployment('a');
    const b = deployment('b');
    const c = deployment('c');
    const r = route(a, b, c);
    const router = new DeploymentRouter(1000, seeded(11), () => 0);
    router.markFailed(a);
    router.markFailed(b);
    router.markFailed(c);
    const seen = new Set<Deployment | undefined>();
    for (let i = 0; i < 300; i++) seen.add(router.pick(r, undefined));
    expect(seen).toEqual(new Set([a, b, c]));
    // c is healthy-but-tried; a and b are cooling and untried: one of them is still offered.
    router.markHealthy(c);
    for (let i = 0; i < 100; i++) expect([a, b]).toContain(router.pick(r, new Set([c])));
    expect(router.pick(r, new Set([a, c]))).toBe(b);
  });

  it('markHealthy clears the cool-down', () => {
    const a = deployment('a');
    const b = deployment('b');
    const r = route(a, b);
    const router = new DeploymentRouter(60_000, () => 0, () => 0);
    router.markFailed(a);
    expect(router.pick(r, undefined)).toBe(b);
    router.markHealthy(a);
    expect(router.isCooling(a)).toBe(false);
    expect(router.pick(r, undefined)).toBe(a);
  });

  it('does not cool down at all when cooldownMs is 0', () => {
    const a = deployment('a');
    const b = deployment('b');
    const router = new DeploymentRouter(0, () => 0, () => 0);
    router.markFailed(a);
    expect(router.isCooling(a)).toBe(false);
    expect(router.pick(route(a, b), undefined)).toBe(a);
  });

  it('keys cool-down by deployment id, shared across routes', () => {
    const a = deployment('a');
    const sameId = deployment('a');
    const b = deployment('b');
    const router = new DeploymentRouter(1000, () => 0, () => 0);
    router.markFailed(a);
    expect(router.isCooling(sameId)).toBe(true);
    expect(router.pick(route(sameId, b), undefined)).toBe(b);
  });
});
