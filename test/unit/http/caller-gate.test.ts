// The caller and the body of a /v1 request, whichever arrives first: the body waits (copied) for a
// pending key lookup, the platform key and failed lookups end the request, and an ended request
// hears of nothing more.
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { CallerGate, type GateOwner } from '../../../src/http/caller-gate.js';
import type { KeyPrincipal } from '../../../src/tenancy/principal.js';

const KEY = { kind: 'key', orgId: 'org', keyId: 'key' } as KeyPrincipal;

function owner() {
  const seen = { bodies: [] as string[], principals: [] as KeyPrincipal[], failures: [] as Array<[string, boolean | undefined]> };
  const o: GateOwner & { isFinished: boolean } = {
    isFinished: false,
    fail(err, close) {
      seen.failures.push([err.code, close]);
      o.isFinished = true;
    },
    onCallerBody(principal, body) {
      seen.principals.push(principal);
      seen.bodies.push(body.toString());
    },
  };
  return { o, seen };
}

describe('CallerGate', () => {
  it('passes the body on at once when the caller is known', () => {
    const { o, seen } = owner();
    const gate = new CallerGate(o);
    gate.setCaller(KEY);
    expect(gate.caller).toBe(KEY);
    gate.onBody(Buffer.from('{}'));
    expect(seen).toMatchObject({ bodies: ['{}'], principals: [KEY], failures: [] });
  });

  it('holds a copy of a body that arrives during the key lookup, and passes it on once verified', async () => {
    const { o, seen } = owner();
    const gate = new CallerGate(o);
    let verify!: (p: KeyPrincipal) => void;
    gate.setCaller(new Promise<KeyPrincipal>((resolve) => (verify = resolve)));
    const body = Buffer.from('{"a":1}');
    gate.onBody(body);
    body.fill(0); // the transport reuses its buffer after the callback
    expect(seen.bodies).toEqual([]);
    verify(KEY);
    await Promise.resolve();
    expect(seen.bodies).toEqual(['{"a":1}']);
  });

  it('ends the request on an unknown key, the platform key or a failed lookup, closing the connection', async () => {
    const outcomes = [() => new GatewayError('NR_UNAUTHORIZED'), () => ({ kind: 'platform' }) as const, () => Promise.reject(new Error('db down'))];
    for (const outcome of outcomes) {
      const { o, seen } = owner();
      const gate = new CallerGate(o);
      gate.setCaller(outcome());
      await new Promise((r) => setImmediate(r));
      gate.onBody(Buffer.from('{}'));
      expect(seen.bodies).toEqual([]);
      expect(seen.failures).toHaveLength(1);
      expect(seen.failures[0]![1]).toBe(true);
    }
  });

  it('tells an owner that already ended nothing when the lookup resolves', async () => {
    const { o, seen } = owner();
    const gate = new CallerGate(o);
    let verify!: (p: KeyPrincipal) => void;
    gate.setCaller(new Promise<KeyPrincipal>((resolve) => (verify = resolve)));
    gate.onBody(Buffer.from('{}'));
    o.isFinished = true;
    verify(KEY);
    await Promise.resolve();
    expect(seen).toMatchObject({ bodies: [], failures: [] });
  });
});
