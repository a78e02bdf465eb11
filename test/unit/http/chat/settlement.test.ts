import { describe, expect, it, vi } from 'vitest';
import type { Deployment } from '../../../../src/config/load.js';
import { releaseHold, settleHold, type ServedOutput, type Settlement, type SettlementDeps } from '../../../../src/http/chat/settlement.js';
import type { Hold } from '../../../../src/ledger/ledger.js';
import { log } from '../../../../src/log.js';
import { chatRequest, FakeLedger, FakeWorkers, hold, route } from './fakes.js';

// paid-a: 1 micro per input token, 2 per output token; o200k_base (a mock deployment).
const A: Deployment = route('paid').deployments[0]!;
// mixed-a / an anthropic-like deployment without a tokenizer, for the byte-bound path.
const NO_ENCODING: Deployment = { ...route('mixed').deployments[0]!, encoding: undefined };

function served(patch: { deployment?: Deployment; outputEstimate?: number; text?: string | undefined } = {}): ServedOutput {
  const text = 'text' in patch ? patch.text : undefined;
  return { deployment: patch.deployment ?? A, outputEstimate: patch.outputEstimate ?? 0, completionText: () => text };
}

function settlement(h: Hold, patch: Partial<Settlement> = {}): Settlement {
  return {
    hold: h,
    served: served(),
    usage: undefined,
    request: chatRequest({ stream: true }),
    maxTokens: 100,
    promptBoundTokens: 40,
    imageTokens: 0,
    images: 0,
    model: 'paid',
    requestId: 'req-1',
    ...patch,
  };
}

function harness() {
  const ledger = new FakeLedger();
  const workers = new FakeWorkers();
  const deps: SettlementDeps = { ledger: ledger.asLedger(), workers: workers.asPool() };
  return { ledger, workers, deps };
}

describe('settleHold', () => {
  it('releases the whole hold when nothing reached the client, and charges 0', () => {
    const { ledger, deps } = harness();
    const h = hold(1_000);
    expect(settleHold(deps, settlement(h, { served: undefined, usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } }))).toBe(0);
    expect(ledger.releases).toEqual([h]);
    expect(ledger.settles).toEqual([]);
    expect(ledger.counted).toEqual([]);
  });

  it('charges reported usage at the serving deployment prices', () => {
    const { ledger, deps } = harness();
    const h = hold(1_000);
    const charged = settleHold(deps, settlement(h, { usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 } }));
    expect(charged).toBe(10 * 1 + 20 * 2);
    expect(ledger.settles).toEqual([{ hold: h, chargeMicros: 50 }]);
    expect(ledger.releases).toEqual([]);
  });

  it('never charges usage above the hold', () => {
    const { ledger, deps } = harness();
    const h = hold(30);
    expect(settleHold(deps, settlement(h, { usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 } }))).toBe(30);
    expect(ledger.settles).toEqual([{ hold: h, chargeMicros: 30 }]);
  });

  it('charges each image at the price of a deployment priced per image, on top of the tokens, within the hold', () => {
    const { deps } = harness();
    const perImage = served({ deployment: { ...A, imagePriceMicros: 500 } });
    const usage = { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 };
    expect(settleHold(deps, settlement(hold(10_000), { served: perImage, usage, images: 2 }))).toBe(10 * 1 + 20 * 2 + 2 * 500);
    expect(settleHold(deps, settlement(hold(10_000), { served: perImage, images: 1 }))).toBe(40 * 1 + 500);
    expect(settleHold(deps, settlement(hold(600), { served: perImage, usage, images: 2 }))).toBe(600);
    // A deployment priced by tokens only charges nothing more for images.
    expect(settleHold(deps, settlement(hold(10_000), { usage, images: 2 }))).toBe(10 * 1 + 20 * 2);
  });

  it('without usage or text charges the estimate: prompt bound plus the output estimate, at most max_tokens', () => {
    const { ledger, deps, workers } = harness();
    const h = hold(10_000);
    expect(settleHold(deps, settlement(h, { served: served({ outputEstimate: 7 }) }))).toBe(40 * 1 + 7 * 2);
    expect(settleHold(deps, settlement(h, { served: served({ outputEstimate: 5_000 }) }))).toBe(40 * 1 + 100 * 2);
    expect(ledger.settles.map((s) => s.chargeMicros)).toEqual([54, 240]);
    expect(ledger.counted).toEqual([]);
    expect(workers.counts).toEqual([]);
  });

  it('caps the estimate at the hold', () => {
    const { ledger, deps } = harness();
    expect(settleHold(deps, settlement(hold(100), { served: served({ outputEstimate: 5_000 }) }))).toBe(100);
    expect(ledger.settles[0]!.chargeMicros).toBe(100);
  });

  it('counts a stream without usage exactly, with the deployment tokenizer, and settles once counted', async () => {
    const { ledger, deps, workers } = harness();
    workers.countAnswer = (job) => (job.kind === 'chat' ? 12 : 9);
    const h = hold(10_000);
    const s = settlement(h, { served: served({ text: 'generated text', outputEstimate: 3 }), imageTokens: 2_000 });
    expect(settleHold(deps, s)).toBeNull();
    expect(ledger.settles).toEqual([]);
    expect(ledger.counted).toHaveLength(1);
    expect(ledger.counted[0]!.hold).toBe(h);
    // Images count at the allowance the hold used; the tokenizer sees only text.
    expect(await ledger.counted[0]!.chargeMicros).toBe((12 + 2_000) * 1 + 9 * 2);
    expect(workers.counts).toEqual([
      { kind: 'chat', messages: s.request.messages, tools: s.request.tools, toolChoice: s.request.tool_choice, encoding: 'o200k_base' },
      { kind: 'text', text: 'generated text', encoding: 'o200k_base' },
    ]);
  });

  it('without a tokenizer charges the prompt bound and the text by its byte bound', async () => {
    const { ledger, deps, workers } = harness();
    // NO_ENCODING costs 1 per token both ways.
    const s = settlement(hold(10_000), { served: served({ deployment: NO_ENCODING, text: 'héllo' }) });
    expect(settleHold(deps, s)).toBeNull();
    expect(workers.counts).toEqual([{ kind: 'text', text: 'héllo', encoding: undefined }]);
    expect(await ledger.counted[0]!.chargeMicros).toBe(40 + 'héllo'.length);
  });

  it('never charges a counted stream more than max_tokens of output or the hold', async () => {
    const { ledger, deps, workers } = harness();
    workers.countAnswer = (job) => (job.kind === 'chat' ? 10 : 1_000_000);
    settleHold(deps, settlement(hold(1_000_000), { served: served({ text: 'x' }) }));
    expect(await ledger.counted[0]!.chargeMicros).toBe(10 * 1 + 100 * 2);

    settleHold(deps, settlement(hold(150), { served: served({ text: 'x' }) }));
    expect(await ledger.counted[1]!.chargeMicros).toBe(150);
  });

  it('charges the estimate when the exact count fails', async () => {
    const { ledger, deps, workers } = harness();
    const warned = vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    workers.countAnswer = (job) => (job.kind === 'text' ? Promise.reject(new Error('task timed out')) : 10);
    expect(settleHold(deps, settlement(hold(10_000), { served: served({ text: 'x', outputEstimate: 4 }) }))).toBeNull();
    expect(await ledger.counted[0]!.chargeMicros).toBe(40 * 1 + 4 * 2);
    expect(ledger.settles).toEqual([]);
    expect(warned).toHaveBeenCalledTimes(1);
    warned.mockRestore();
  });

  it('prefers reported usage over counting a stream', () => {
    const { ledger, deps, workers } = harness();
    settleHold(deps, settlement(hold(10_000), { served: served({ text: 'x' }), usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
    expect(ledger.settles).toEqual([{ hold: hold(10_000), chargeMicros: 3 }]);
    expect(ledger.counted).toEqual([]);
    expect(workers.counts).toEqual([]);
  });
});

describe('releaseHold', () => {
  it('returns the whole hold and swallows a rejected release into the log', async () => {
    const { ledger } = harness();
    const h = hold(5);
    releaseHold(ledger.asLedger(), h);
    expect(ledger.releases).toEqual([h]);
    const logged = vi.spyOn(log, 'error').mockImplementation(() => undefined);
    ledger.release = () => Promise.reject(new Error('bug'));
    expect(() => releaseHold(ledger.asLedger(), h)).not.toThrow();
    await new Promise((resolve) => setImmediate(resolve));
    expect(logged).toHaveBeenCalledWith('ledger: settlement failed', { error: 'bug' });
    logged.mockRestore();
  });
});
