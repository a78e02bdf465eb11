import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import { abandon, admit, decodeBody, parseChatRequest, routeChatRequest, type AdmissionDeps, type AdmissionObserver, type Admitted, type ChatBody, type Refused } from '../../../../src/http/chat/admission.js';
import { boundingPrices } from '../../../../src/ledger/pricing.js';
import { log } from '../../../../src/log.js';
import type { ChatRequest } from '../../../../src/providers/types.js';
import type { KeyPrincipal } from '../../../../src/tenancy/principal.js';
import { RateLimiter, type LimitScope } from '../../../../src/tenancy/rate-limiter.js';
import { config, FakeEvents, FakeLedger, FakeLimiter, FakeWorkers, guardrails, principal, redacting, route } from './fakes.js';

const LIMITS: readonly LimitScope[] = [{ id: 'key:1', rpm: 10, tpm: undefined }];
/** An exchange still waiting: records what the prompt check reported. */
function observer(isFinished = false): AdmissionObserver & { isFinished: boolean; checked: Array<{ findings: readonly unknown[]; redacted: boolean }> } {
  const checked: Array<{ findings: readonly unknown[]; redacted: boolean }> = [];
  return { isFinished, checked, onPromptChecked: (findings, redacted) => void checked.push({ findings, redacted }) };
}
const ALIVE = observer();

/** The exchange's three synchronous steps: decode, parse, route. */
function readChatBody(body: Buffer, who: ReturnType<typeof principal>, models: typeof config.models): ChatBody {
  return routeChatRequest(parseChatRequest(decodeBody(body)), body.byteLength, who, models);
}

function harness() {
  const ledger = new FakeLedger();
  const limiter = new FakeLimiter();
  const workers = new FakeWorkers();
  const events = new FakeEvents();
  const deps: AdmissionDeps = { config, ledger: ledger.asLedger(), limiter: limiter.asLimiter(), workers: workers.asPool(), guardrailEvents: events.asEventLog() };
  return { ledger, limiter, workers, events, deps };
}

function bodyOf(request: Record<string, unknown>, who: KeyPrincipal = principal()): ChatBody {
  return readChatBody(Buffer.from(JSON.stringify(request)), who, config.models);
}

function gatewayErrorOf(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a GatewayError');
}

function admitted(result: Admitted | Refused | undefined): Admitted {
  if (result === undefined || 'error' in result) throw new Error(`expected admission, got ${result === undefined ? 'undefined' : result.error.code}`);
  return result;
}

function refusedWith(result: Admitted | Refused | undefined): Refused {
  if (result === undefined || !('error' in result)) throw new Error('expected a refusal');
  return result;
}

afterEach(() => {
  vi.useRealTimers();
});

const hello = { model: 'paid', messages: [{ role: 'user', content: 'hello there' }] };

describe('readChatBody', () => {
  it('refuses a body that is not UTF-8', () => {
    const err = gatewayErrorOf(() => readChatBody(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), principal(), config.models));
    expect(err.code).toBe('NR_INVALID_UTF8');
    expect(err.status).toBe(400);
  });

  it('refuses a body that is not JSON', () => {
    expect(gatewayErrorOf(() => readChatBody(Buffer.from('{"model":'), principal(), config.models)).code).toBe('NR_INVALID_JSON');
  });

  it('refuses a request that does not validate', () => {
    expect(gatewayErrorOf(() => bodyOf({ model: 'paid' })).code).toBe('NR_INVALID_REQUEST');
  });

  it('refuses an unknown model with 404 on param model', () => {
    const err = gatewayErrorOf(() => bodyOf({ ...hello, model: 'nope' }));
    expect(err).toMatchObject({ code: 'NR_MODEL_NOT_FOUND', status: 404, param: 'model' });
    expect(err.message).toContain('"nope"');
  });

  it('refuses a model outside the key allow-list with 403', () => {
    const who = principal({ allowedModels: new Set(['other']) });
    expect(gatewayErrorOf(() => bodyOf(hello, who))).toMatchObject({ code: 'NR_MODEL_NOT_ALLOWED', status: 403, param: 'model' });
    expect(bodyOf({ ...hello, model: 'other' }, who).route.name).toBe('other');
  });

  it('counts the body in bytes and decodes it as received', () => {
    const raw = JSON.stringify({ ...hello, messages: [{ role: 'user', content: 'héllo ✓' }] });
    const metadata = readChatBody(Buffer.from(raw), principal(), config.models);
    expect(metadata.bodyBytes).toBe(Buffer.byteLength(raw));
    expect(metadata.bodyBytes).toBeGreaterThan(raw.length);
    expect(metadata.route).toBe(route('paid'));
    expect(decodeBody(Buffer.from(raw))).toBe(raw);
  });
});

describe('admit: max_tokens', () => {
  it("refuses max_tokens over the route's smallest max output before anything is held", async () => {
    const { deps, ledger, limiter } = harness();
    expect(route('paid').maxOutputTokens).toBe(500);
    const result = refusedWith(await admit(deps, principal({ limits: LIMITS }), bodyOf({ ...hello, max_tokens: 501 }), 'req-1', ALIVE));
    expect(result.error).toMatchObject({ code: 'NR_INVALID_REQUEST', param: 'max_tokens' });
    expect(result.error.message).toContain('500');
    expect(ledger.calls).toBe(0);
    expect(limiter.admitted).toEqual([]);
  });

  it('names max_completion_tokens when that is the field the client used', async () => {
    const { deps } = harness();
    const result = refusedWith(await admit(deps, principal(), bodyOf({ ...hello, max_completion_tokens: 9999 }), 'req-1', ALIVE));
    expect(result.error).toMatchObject({ code: 'NR_INVALID_REQUEST', param: 'max_completion_tokens' });
  });

  it('admits max_tokens equal to the limit', async () => {
    const { deps } = harness();
    expect(admitted(await admit(deps, principal(), bodyOf({ ...hello, max_tokens: 500 }), 'req-1', ALIVE)).maxTokens).toBe(500);
  });
});

describe('admit: the hold', () => {
  // paid: the dearest input price is b's 3, the dearest output price a's 2.
  it('holds prompt bytes and max_tokens at the dearest prices, all or nothing', async () => {
    expect(boundingPrices(route('paid'))).toEqual({ input: 3, output: 2, image: 0 });
    const { deps, ledger } = harness();
    const body = bodyOf({ ...hello, max_tokens: 100 });
    const result = admitted(await admit(deps, principal(), body, 'req-7', ALIVE));
    const amount = body.bodyBytes * 3 + 100 * 2;
    expect(ledger.reserves).toEqual([{ orgId: principal().orgId, keyId: principal().keyId, requestId: 'req-7', amountMicros: amount, minAmountMicros: amount, tokens: body.bodyBytes + 100, model: 'paid' }]);
    expect(result.hold?.amountMicros).toBe(amount);
    expect(result.maxTokens).toBe(100);
    expect(result.promptBoundTokens).toBe(body.bodyBytes);
    expect(result.imageTokens).toBe(0);
  });

  it('without max_tokens holds up to the route max output, at least minOutputTokens', async () => {
    const { deps, ledger } = harness();
    const body = bodyOf(hello);
    const min = config.ledger.minOutputTokens;
    expect(min).toBe(16);
    admitted(await admit(deps, principal(), body, 'req-1', ALIVE));
    expect(ledger.reserves[0]).toMatchObject({ amountMicros: body.bodyBytes * 3 + 500 * 2, minAmountMicros: body.bodyBytes * 3 + min * 2, tokens: body.bodyBytes + min });
  });

  it('sends upstream exactly the output a partial hold pays for', async () => {
    const { deps, ledger } = harness();
    const body = bodyOf(hello);
    // The balance covers the prompt and 50.5 output tokens: 50 go upstream.
    ledger.reserveAnswer = () => body.bodyBytes * 3 + 101;
    const result = admitted(await admit(deps, principal(), body, 'req-1', ALIVE));
    expect(result.hold?.amountMicros).toBe(body.bodyBytes * 3 + 101);
    expect(result.maxTokens).toBe(50);
  });

  it('holds each image at the configured allowance', async () => {
    const { deps, ledger } = harness();
    const allowance = config.ledger.imageTokenAllowance;
    const image = { type: 'image_url', image_url: { url: 'https://x.test/a.png' } };
    const body = bodyOf({ ...hello, max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, image, image] }] });
    const result = admitted(await admit(deps, principal(), body, 'req-1', ALIVE));
    expect(result.imageTokens).toBe(2 * allowance);
    expect(result.promptBoundTokens).toBe(body.bodyBytes + 2 * allowance);
    expect(ledger.reserves[0]!.amountMicros).toBe((body.bodyBytes + 2 * allowance) * 3 + 10 * 2);
  });

  it('answers 402 when the credits cannot cover the minimum, and gives the local window back', async () => {
    const { deps, ledger, limiter } = harness();
    ledger.reserveAnswer = () => 'funds';
    const body = bodyOf({ ...hello, max_tokens: 100 });
    const result = refusedWith(await admit(deps, principal({ limits: LIMITS }), body, 'req-1', ALIVE));
    expect(result.error).toMatchObject({ code: 'NR_INSUFFICIENT_QUOTA', status: 402 });
    expect(limiter.admitted).toEqual([{ scopes: LIMITS, tokens: body.bodyBytes + 100 }]);
    expect(limiter.givenBack).toHaveLength(1);
    expect(limiter.givenBack[0]).toMatchObject({ scopes: LIMITS, tokens: body.bodyBytes + 100 });
    expect(ledger.releases).toEqual([]);
  });

  it('a request refused for funds does not use up the key rpm on this instance', async () => {
    const { deps, ledger } = harness();
    // Admission stamps its window with Date.now(), the limiter's default clock: both are pinned.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
    const limiter = new RateLimiter();
    const oneRpm = principal({ limits: [{ id: 'key:one', rpm: 1, tpm: undefined }] });
    const realDeps: AdmissionDeps = { ...deps, limiter };
    ledger.reserveAnswer = () => 'funds';
    expect(refusedWith(await admit(realDeps, oneRpm, bodyOf(hello), 'req-1', ALIVE)).error.code).toBe('NR_INSUFFICIENT_QUOTA');
    ledger.reserveAnswer = (amount) => amount;
    expect(admitted(await admit(realDeps, oneRpm, bodyOf(hello), 'req-2', ALIVE)).hold).toBeDefined();
    expect(refusedWith(await admit(realDeps, oneRpm, bodyOf(hello), 'req-3', ALIVE)).error.code).toBe('NR_RATE_LIMITED');
  });

  it('answers 429 from the local window without asking the ledger', async () => {
    const { deps, ledger, limiter } = harness();
    limiter.answer = { ok: false, retryAfterS: 12, state: { limitRequests: 10, remainingRequests: 0, limitTokens: undefined, remainingTokens: undefined, resetS: 12 } };
    const result = refusedWith(await admit(deps, principal({ limits: LIMITS }), bodyOf(hello), 'req-1', ALIVE));
    expect(result.error).toMatchObject({ code: 'NR_RATE_LIMITED', status: 429, retryAfterS: 12 });
    expect(result.error.headers).toMatchObject({ 'x-ratelimit-remaining-requests': '0' });
    expect(ledger.calls).toBe(0);
    expect(limiter.givenBack).toEqual([]);
  });

  it('passes the rate-limit headers on to the admitted request', async () => {
    const { deps } = harness();
    const result = admitted(await admit(deps, principal({ limits: LIMITS }), bodyOf(hello), 'req-1', ALIVE));
    expect(result.limitHeaders).toMatchObject({ 'x-ratelimit-limit-requests': '10', 'x-ratelimit-remaining-requests': '9' });
    expect(result.localAdmission?.tokens).toBe(result.promptBoundTokens + config.ledger.minOutputTokens);
  });

  it('gives the local window back and answers a typed error when the ledger fails', async () => {
    const { deps, ledger, limiter } = harness();
    ledger.reserveAnswer = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const result = refusedWith(await admit(deps, principal({ limits: LIMITS }), bodyOf(hello), 'req-1', ALIVE));
    expect(result.error).toMatchObject({ code: 'NR_DATABASE_UNAVAILABLE', status: 503 });
    expect(limiter.givenBack).toHaveLength(1);

    ledger.reserveAnswer = () => new TypeError('a bug');
    expect(refusedWith(await admit(deps, principal({ limits: LIMITS }), bodyOf(hello), 'req-2', ALIVE)).error.code).toBe('NR_INTERNAL');
    expect(limiter.givenBack).toHaveLength(2);
  });

  it('lets a free model through a key without limits without any ledger call', async () => {
    const { deps, ledger, limiter } = harness();
    const result = admitted(await admit(deps, principal(), bodyOf({ ...hello, model: 'free' }), 'req-1', ALIVE));
    expect(result.hold).toBeUndefined();
    expect(result.maxTokens).toBe(300);
    expect(result.localAdmission).toBeUndefined();
    expect(ledger.calls).toBe(0);
    expect(limiter.admitted).toEqual([]);
  });

  it('counts a free model of a limited key against the shared limits, holding nothing', async () => {
    const { deps, ledger, limiter } = harness();
    const body = bodyOf({ ...hello, model: 'free', max_tokens: 20 });
    const result = admitted(await admit(deps, principal({ limits: LIMITS }), body, 'req-9', ALIVE));
    expect(result.hold).toBeUndefined();
    expect(ledger.reserves).toEqual([]);
    expect(ledger.admits).toEqual([{ orgId: principal().orgId, keyId: principal().keyId, requestId: 'req-9', tokens: body.bodyBytes + 20 }]);

    ledger.admitAnswer = 'team_rpm';
    const refused = refusedWith(await admit(deps, principal({ limits: LIMITS }), body, 'req-10', ALIVE));
    expect(refused.error).toMatchObject({ code: 'NR_RATE_LIMITED', status: 429 });
    expect(refused.error.headers).toMatchObject({ 'x-ratelimit-remaining-requests': '0' });
    expect(limiter.givenBack).toHaveLength(1);
  });
});

describe('admit: the request ended while it waited', () => {
  it('resolves undefined and holds nothing when the client left during the prompt check', async () => {
    const { deps, ledger, limiter, workers } = harness();
    const liveness = observer();
    workers.scanAnswer = () => {
      liveness.isFinished = true;
      return Promise.resolve({ blocked: undefined, redacted: undefined, findings: [] });
    };
    const who = principal({ limits: LIMITS, guardrails: guardrails() });
    expect(await admit(deps, who, bodyOf(hello), 'req-1', liveness)).toBeUndefined();
    expect(workers.scans).toHaveLength(1);
    expect(ledger.calls).toBe(0);
    expect(limiter.admitted).toEqual([]);
  });

  it('resolves undefined for a request already ended, without guardrails too', async () => {
    const { deps, ledger, limiter } = harness();
    expect(await admit(deps, principal({ limits: LIMITS }), bodyOf(hello), 'req-1', observer(true))).toBeUndefined();
    expect(ledger.calls).toBe(0);
    expect(limiter.admitted).toEqual([]);
  });

  it('abandon() releases the hold and gives the local window back', async () => {
    const { deps, ledger, limiter } = harness();
    const who = principal({ limits: LIMITS });
    const result = admitted(await admit(deps, who, bodyOf(hello), 'req-1', ALIVE));
    abandon(deps, who, result);
    expect(ledger.releases).toEqual([result.hold]);
    expect(ledger.settles).toEqual([]);
    expect(limiter.givenBack).toEqual([{ scopes: LIMITS, tokens: result.localAdmission!.tokens, admittedAtMs: result.localAdmission!.atMs }]);
  });

  it('abandon() of a free request releases nothing', async () => {
    const { deps, ledger, limiter } = harness();
    const result = admitted(await admit(deps, principal(), bodyOf({ ...hello, model: 'free' }), 'req-1', ALIVE));
    abandon(deps, principal(), result);
    expect(ledger.calls).toBe(0);
    expect(limiter.givenBack).toEqual([]);
  });
});

describe('admit: prompt guardrails', () => {
  it('refuses a blocked prompt with its findings, holding nothing and counting nothing', async () => {
    const { deps, ledger, limiter, workers, events } = harness();
    const block = { rule: 'deny_word:0', action: 'block' as const, start: 0, end: 5 };
    const flag = { rule: 'pii:email', action: 'flag' as const, start: 6, end: 11 };
    workers.scanAnswer = () => ({ blocked: block, redacted: undefined, findings: [flag, block] });
    const who = principal({ limits: LIMITS, guardrails: guardrails() });
    const result = refusedWith(await admit(deps, who, bodyOf(hello), 'req-3', ALIVE));
    expect(result.error).toMatchObject({ code: 'NR_GUARDRAIL_VIOLATION', status: 400, param: 'messages' });
    expect(result.error.message).toContain('deny_word:0');
    expect(result.findings).toEqual([flag, block]);
    expect(ledger.calls).toBe(0);
    expect(limiter.admitted).toEqual([]);
    expect(events.recorded).toEqual([{ ctx: { orgId: who.orgId, keyId: who.keyId, requestId: 'req-3' }, stage: 'input', findings: [flag, block] }]);
  });

  it('refuses every request of a key whose policy is invalid', async () => {
    const { deps, ledger, workers } = harness();
    const result = refusedWith(await admit(deps, principal({ guardrails: guardrails({ invalid: true }) }), bodyOf(hello), 'req-1', ALIVE));
    expect(result.error.code).toBe('NR_GUARDRAIL_POLICY_INVALID');
    expect(workers.scans).toEqual([]);
    expect(ledger.calls).toBe(0);
  });

  it('fails closed with 503 when the prompt check fails', async () => {
    const { deps, ledger, workers } = harness();
    const warned = vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    workers.scanAnswer = () => Promise.reject(new Error('worker died'));
    const result = refusedWith(await admit(deps, principal({ guardrails: guardrails() }), bodyOf(hello), 'req-1', ALIVE));
    expect(result.error.code).toBe('NR_OVERLOADED');
    expect(ledger.calls).toBe(0);
    expect(warned).toHaveBeenCalledWith('guardrails: prompt check failed', { requestId: 'req-1', error: 'worker died' });
    warned.mockRestore();
  });

  it('holds for the redacted request, not the one received', async () => {
    const { deps, ledger, workers } = harness();
    const email = 'someone.with.a.rather.long.address@example.com';
    workers.scanAnswer = redacting(email, '[REDACTED:EMAIL]');
    const body = bodyOf({ ...hello, max_tokens: 10, messages: [{ role: 'user', content: `mail ${email} now` }] });
    const result = admitted(await admit(deps, principal({ guardrails: guardrails() }), body, 'req-1', ALIVE));
    expect(result.redacted).toBe(true);
    expect(result.request).toBe(body.request);
    expect(body.request.messages[0]!.content).toBe('mail [REDACTED:EMAIL] now');
    const redactedBytes = Buffer.byteLength(JSON.stringify(body.request));
    expect(redactedBytes).toBeLessThan(body.bodyBytes);
    expect(result.promptBoundTokens).toBe(redactedBytes);
    expect(ledger.reserves[0]!.amountMicros).toBe(redactedBytes * 3 + 10 * 2);
    expect(result.findings).toHaveLength(1);
  });

  // Regression: the verdict reached the exchange only with the hold, so a client leaving while the
  // hold was asked for had its raw (unredacted) prompt written to a `full` request log.
  it('tells the exchange what the prompt check found before the hold is asked for', async () => {
    const { deps, ledger, workers } = harness();
    workers.scanAnswer = redacting('secret@example.com', '[EMAIL]');
    const watcher = observer();
    let checkedAtReserve: number | undefined;
    ledger.reserveAnswer = (amount) => {
      checkedAtReserve = watcher.checked.length;
      return amount;
    };
    const body = bodyOf({ ...hello, messages: [{ role: 'user', content: 'mail secret@example.com' }] });
    admitted(await admit(deps, principal({ guardrails: guardrails() }), body, 'req-1', watcher));
    expect(checkedAtReserve).toBe(1);
    expect(watcher.checked[0]).toMatchObject({ redacted: true });
    expect(watcher.checked[0]!.findings).toHaveLength(1);
  });

  it("counts max_input_tokens with the route's tokenizer, only when the byte bound is over it", async () => {
    const { deps, workers, ledger } = harness();
    const body = bodyOf(hello);
    workers.countAnswer = () => 3;
    const scanless = (maxInputTokens: number) => principal({ guardrails: guardrails({ scansInput: false, maxInputTokens }) });

    admitted(await admit(deps, scanless(body.bodyBytes), body, 'req-1', ALIVE));
    expect(workers.counts).toEqual([]);

    admitted(await admit(deps, scanless(5), body, 'req-2', ALIVE));
    expect(workers.counts).toHaveLength(1);
    expect(workers.counts[0]).toMatchObject({ kind: 'chat', encoding: 'o200k_base' });

    const blocked = refusedWith(await admit(deps, scanless(2), body, 'req-3', ALIVE));
    expect(blocked.error.code).toBe('NR_GUARDRAIL_VIOLATION');
    expect(blocked.findings).toEqual([{ rule: 'max_input_tokens', action: 'block', start: 0, end: 0 }]);
    expect(ledger.reserves).toHaveLength(2);
  });

  it('counts by the byte bound when the deployments of a route tokenize differently', async () => {
    const { deps, workers } = harness();
    const body = bodyOf({ ...hello, model: 'mixed' });
    const result = refusedWith(await admit(deps, principal({ guardrails: guardrails({ scansInput: false, maxInputTokens: body.bodyBytes - 1 }) }), body, 'req-1', ALIVE));
    expect(result.error.code).toBe('NR_GUARDRAIL_VIOLATION');
    expect(workers.counts).toEqual([]);
  });
});

// Type-level guard: a ChatBody's request is the validated ChatRequest the guardrails write into.
const _typed: (b: ChatBody) => ChatRequest = (b) => b.request;
void _typed;
