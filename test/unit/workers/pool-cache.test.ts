// The pool's result caches must never change an answer: a prompt counted text by text, some texts
// cached, some inline and some in a worker, totals exactly what one uncached count gives; a cached
// verdict is the verdict a fresh scan gives.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ENCODINGS } from '../../../src/config/model-encodings.js';
import { deepFreeze } from '../../../src/json/parsed-elements.js';
import { compiledPolicy } from '../../../src/guardrails/compiled-policy.js';
import { scanText } from '../../../src/guardrails/policy.js';
import type { GuardrailPolicy } from '../../../src/guardrails/types.js';
import { registry } from '../../../src/metrics/registry.js';
import type { ChatMessage, ChatTool } from '../../../src/providers/types.js';
import { countChatPromptTokens } from '../../../src/tokens/count.js';
import { WorkerPool } from '../../../src/workers/pool.js';

// Small inline budget: most long texts of a prompt go to a worker, the rest run inline.
const pool = new WorkerPool({ threads: 2, inlineMaxChars: 200, maxBatchChars: 65_536, taskTimeoutMs: 30_000, resultCacheMaxBytes: 1 << 20 });
afterAll(() => pool.close());

const TOOLS: ChatTool[] = [{ type: 'function', function: { name: 'read_file', description: 'Reads a file of the repository.', parameters: { type: 'object', properties: { path: { type: 'string' } } } } }];
const sentence = fc.constantFrom('The build failed on line 42. ', 'Überprüfe die Datei bitte noch einmal. ', '日本語のテキストも数えます。', 'const x = await fetch(url);\n', '😀 emoji 👩‍💻 ', '    indented code block\n');
const text = fc.array(sentence, { minLength: 0, maxLength: 40 }).map((parts) => parts.join(''));
const message: fc.Arbitrary<ChatMessage> = fc.oneof(
  fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: text }),
  fc.record({ role: fc.constant('user'), content: fc.array(text, { minLength: 1, maxLength: 3 }).map((ts) => ts.map((t) => ({ type: 'text' as const, text: t }))) }),
  fc.record({ role: fc.constant('assistant'), content: fc.constant(null), tool_calls: fc.constant([{ id: 'call_1', type: 'function' as const, function: { name: 'read_file', arguments: '{"path":"src/main.ts"}' } }]) }),
  fc.record({ role: fc.constant('tool'), content: text, tool_call_id: fc.constant('call_1') }),
) as fc.Arbitrary<ChatMessage>;

describe.each(ENCODINGS)('cached prompt counts on %s', (encoding) => {
  it('equal an uncached count over random conversations, each resent with one more turn', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 12 }), fc.boolean(), async (conversation, withTools) => {
        const tools = withTools ? TOOLS : undefined;
        // A growing conversation, like an agent resending its history: later counts hit the cache.
        for (let turns = 1; turns <= conversation.length; turns++) {
          const messages = conversation.slice(0, turns);
          const cached = await pool.countTokens({ kind: 'chat', messages, tools, toolChoice: undefined, encoding });
          expect(cached).toBe(countChatPromptTokens(messages, encoding, { tools }));
        }
      }),
      { seed: 7_301, numRuns: 40 },
    );
  });

  it('equal an uncached count when the messages and tools are shared (frozen) objects, each total remembered by identity', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 12 }), fc.boolean(), fc.constantFrom(undefined, 'none', { type: 'function', function: { name: 'read_file' } }), async (conversation, withTools, toolChoice) => {
        // As a cached parse hands them out (json/parsed-elements.ts): the same frozen objects each request.
        const shared = deepFreeze(structuredClone(conversation));
        const tools = withTools ? deepFreeze(structuredClone(TOOLS)) : undefined;
        for (let turns = 1; turns <= shared.length; turns++) {
          const messages = shared.slice(0, turns);
          const counted = await pool.countTokens({ kind: 'chat', messages, tools, toolChoice, encoding });
          expect(counted).toBe(countChatPromptTokens(messages, encoding, { tools, toolChoice }));
        }
        // Resent whole, every share is known: answered at once, no job queued.
        const again = pool.countTokens({ kind: 'chat', messages: shared, tools, toolChoice, encoding });
        expect(again).toBe(countChatPromptTokens(shared, encoding, { tools, toolChoice }));
      }),
      { seed: 7_302, numRuns: 40 },
    );
  });

  it('count a shared object as what it is sent as: a tool\'s total is not a message\'s', async () => {
    const both = deepFreeze({ role: 'user', content: 'Long message text. '.repeat(200), type: 'function', function: { name: 'f', description: 'A tool.' } }) as unknown as ChatMessage & ChatTool;
    const asTool = await pool.countTokens({ kind: 'chat', messages: [{ role: 'user', content: 'hi' }], tools: [both], toolChoice: undefined, encoding });
    expect(asTool).toBe(countChatPromptTokens([{ role: 'user', content: 'hi' }], encoding, { tools: [both] }));
    const asMessage = await pool.countTokens({ kind: 'chat', messages: [both], tools: undefined, toolChoice: undefined, encoding });
    expect(asMessage).toBe(countChatPromptTokens([both], encoding));
  });
});

describe('cached verdicts', () => {
  const policy: GuardrailPolicy = { deny_words: ['forbidden'], pii: { email: 'redact' } };
  const policyKey = 'test-policy-v1';

  it('equal a fresh scan, for a clean text, a redacted one and a blocked one, on both stages', async () => {
    const texts = ['a clean text that is long enough to be cached by the pool', 'write to alice@example.com about the long enough invoice', 'this long enough prompt says the forbidden word'];
    for (const stage of ['input', 'output'] as const) {
      for (const t of texts) {
        const fresh = scanText(compiledPolicy(policyKey, policy), t, stage);
        expect(await pool.scan({ policyKey, policy, text: t, stage })).toEqual(fresh);
        expect(await pool.scan({ policyKey, policy, text: t, stage })).toEqual(fresh);
      }
    }
  });

  it('are not shared between policies', async () => {
    const t = 'this long enough prompt mentions a secret codename';
    const lax = await pool.scan({ policyKey: 'lax', policy: {}, text: t, stage: 'input' });
    const strict = await pool.scan({ policyKey: 'strict', policy: { deny_words: ['codename'] }, text: t, stage: 'input' });
    expect(lax.blocked).toBeUndefined();
    expect(strict.blocked?.rule).toBeDefined();
  });

  it('are counted as hits and misses in the exported metrics', async () => {
    const t = `a text seen twice for the metrics ${Date.now()}`;
    await pool.scan({ policyKey, policy, text: t, stage: 'input' });
    await pool.scan({ policyKey, policy, text: t, stage: 'input' });
    const metric = (await registry.getSingleMetric('nemo_worker_cache_lookups_total')!.get()).values;
    const hits = metric.find((v) => v.labels.cache === 'scan_verdicts' && v.labels.result === 'hit')?.value ?? 0;
    expect(hits).toBeGreaterThan(0);
  });
});
