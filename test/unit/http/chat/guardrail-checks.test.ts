import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import { checkAnswer, checkPrompt, MAX_INPUT_TOKENS_RULE, parseAnswer } from '../../../../src/http/chat/guardrail-checks.js';
import type { Finding, ScanResult } from '../../../../src/guardrails/types.js';
import type { ChatRequest } from '../../../../src/providers/types.js';
import { validateChatRequest } from '../../../../src/http/validate-chat-request.js';
import { PIECEWISE_MIN_BYTES, parseJsonBytes } from '../../../../src/json/parse-bytes.js';
import { deepFreeze, parsedElements } from '../../../../src/json/parsed-elements.js';
import { verbatimOf } from '../../../../src/json/verbatim.js';
import { CLEAN, chatRequest, FakeWorkers, guardrails, redacting } from './fakes.js';

const EMAIL = 'jane@example.com';
const PLACEHOLDER = '[REDACTED:EMAIL]';

/** Every free-form place a prompt carries text, each with the email in it. */
function promptWithEmails(): ChatRequest {
  return chatRequest({
    messages: [
      { role: 'system', content: `write to ${EMAIL}` },
      {
        role: 'user',
        content: [
          { type: 'text', text: `me: ${EMAIL}` },
          { type: 'image_url', image_url: { url: `https://x.test/${EMAIL}.png` } },
        ],
      },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'send', arguments: `{"to":"${EMAIL}"}` } }] },
    ],
    tools: [{ type: 'function', function: { name: 'send', description: `sends as ${EMAIL}` } }],
  });
}

describe('checkPrompt', () => {
  it('scans every piece of prompt text and writes the redactions back into the request', async () => {
    const workers = new FakeWorkers();
    workers.scanAnswer = redacting(EMAIL, PLACEHOLDER);
    const guard = guardrails();
    const request = promptWithEmails();
    const bytesBefore = Buffer.byteLength(JSON.stringify(request));
    const verdict = await checkPrompt(workers.asPool(), guard, request, 10, 'o200k_base');

    expect(verdict.blocked).toBeUndefined();
    expect(verdict.redacted).toBe(true);
    // The hold's bound follows the body without serializing it again (exact here: nothing removed needed escaping).
    expect(verdict.bodyBytesDelta).toBe(Buffer.byteLength(JSON.stringify(request)) - bytesBefore);
    expect(verdict.findings).toHaveLength(4);
    expect(workers.scans.map((j) => j.text)).toEqual([`write to ${EMAIL}`, `me: ${EMAIL}`, `{"to":"${EMAIL}"}`, `sends as ${EMAIL}`]);
    expect(workers.scans.every((j) => j.stage === 'input' && j.policyKey === guard.policyKey && j.policy === guard.policy)).toBe(true);

    expect(request.messages[0]!.content).toBe(`write to ${PLACEHOLDER}`);
    const parts = request.messages[1]!.content as Array<{ type: string; text?: string; image_url?: { url: string } }>;
    expect(parts[0]!.text).toBe(`me: ${PLACEHOLDER}`);
    // An image URL is not prompt text: it is neither scanned nor rewritten.
    expect(parts[1]!.image_url!.url).toBe(`https://x.test/${EMAIL}.png`);
    expect(request.messages[2]!.tool_calls![0]!.function.arguments).toBe(`{"to":"${PLACEHOLDER}"}`);
    expect(request.tools![0]!.function.description).toBe(`sends as ${PLACEHOLDER}`);
  });

  it('lets a large body\'s unchanged messages go as received, and no message it redacted', async () => {
    const workers = new FakeWorkers();
    workers.scanAnswer = redacting(EMAIL, PLACEHOLDER);
    const raw = [
      `{ "role": "user", "content": "${'p'.repeat(PIECEWISE_MIN_BYTES)}" }`,
      `{ "role": "user", "content": [{ "type": "text", "text": "me: ${EMAIL}" }] }`,
      `{ "role": "assistant", "content": null, "tool_calls": [{ "id": "c1", "type": "function", "function": { "name": "send", "arguments": "{\\"to\\":\\"${EMAIL}\\"}" } }] }`,
    ];
    const request = validateChatRequest(parseJsonBytes(Buffer.from(`{"model": "m", "messages": [${raw.join(", ")}]}`), 'org'));
    expect(request.messages.map((m) => verbatimOf(m) !== undefined)).toEqual([true, true, true]);
    await checkPrompt(workers.asPool(), guardrails(), request, 10, 'o200k_base');
    expect(Buffer.from(verbatimOf(request.messages[0]!)!).toString('utf8')).toBe(raw[0]);
    expect(request.messages.slice(1).map((m) => verbatimOf(m))).toEqual([undefined, undefined]);
  });

  it('a conversation resent as shared (cached) messages: earlier turns neither scanned nor redacted again, and their copies never change the shared objects', async () => {
    parsedElements.resize(8 * 1024 * 1024);
    try {
      const workers = new FakeWorkers();
      workers.scanAnswer = redacting(EMAIL, PLACEHOLDER);
      const guard = guardrails();
      const turns = [
        `{"role":"system","content":"${'p'.repeat(PIECEWISE_MIN_BYTES)}"}`,
        `{"role":"user","content":"mail ${EMAIL}"}`,
        `{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"send","arguments":"{\\"to\\":\\"${EMAIL}\\"}"}}]}`,
      ];
      const receive = (messages: string[]) => validateChatRequest(parseJsonBytes(Buffer.from(`{"model":"m","messages":[${messages.join(',')}]}`), 'org'));
      const first = receive(turns);
      const shared = [...first.messages];
      const firstVerdict = await checkPrompt(workers.asPool(), guard, first, 10, 'o200k_base');
      expect(firstVerdict.redacted).toBe(true);
      expect(workers.scans).toHaveLength(3);

      const second = receive([...turns, `{"role":"user","content":"and ${EMAIL} again"}`]);
      for (let i = 0; i < 3; i++) expect(second.messages[i]).toBe(shared[i]);
      const secondVerdict = await checkPrompt(workers.asPool(), guard, second, 10, 'o200k_base');
      // Only the new turn was scanned; the verdict covers the whole conversation.
      expect(workers.scans.slice(3).map((j) => j.text)).toEqual([`and ${EMAIL} again`]);
      expect(secondVerdict.findings).toHaveLength(firstVerdict.findings.length + 1);
      expect(secondVerdict.bodyBytesDelta).toBe(firstVerdict.bodyBytesDelta + PLACEHOLDER.length - EMAIL.length);
      // Both requests carry the same redacted copies, sent as serialized once; the shared originals are as received.
      expect(second.messages[1]).toBe(first.messages[1]);
      expect(second.messages[1]).toEqual({ role: 'user', content: `mail ${PLACEHOLDER}` });
      expect(Buffer.from(verbatimOf(second.messages[1]!)!).toString('utf8')).toBe(JSON.stringify(second.messages[1]));
      expect(second.messages[2]!.tool_calls![0]!.function.arguments).toBe(`{"to":"${PLACEHOLDER}"}`);
      expect(shared[1]).toEqual({ role: 'user', content: `mail ${EMAIL}` });
      expect(JSON.stringify(second)).not.toContain(EMAIL);
      expect(Buffer.from(verbatimOf(second.messages[0]!)!).toString('utf8')).toBe(turns[0]);

      // Another policy is not answered by this one's verdicts.
      const third = receive(turns);
      await checkPrompt(workers.asPool(), guardrails({ policyKey: 'policy-2' }), third, 10, 'o200k_base');
      expect(workers.scans).toHaveLength(4 + 3);
    } finally {
      parsedElements.resize(0);
    }
  });

  it('a shared object checked as a message is checked again as a tool (its description was never scanned), and the other way round', async () => {
    const workers = new FakeWorkers();
    workers.scanAnswer = redacting(EMAIL, PLACEHOLDER);
    const both = deepFreeze({ role: 'user' as const, content: 'hello', type: 'function' as const, function: { name: 'f', description: `mail ${EMAIL}` } });
    const asMessage = chatRequest({ messages: [both] });
    expect((await checkPrompt(workers.asPool(), guardrails(), asMessage, 10, 'o200k_base')).findings).toEqual([]);
    const asTool = chatRequest({ tools: [both] });
    const verdict = await checkPrompt(workers.asPool(), guardrails(), asTool, 10, 'o200k_base');
    expect(verdict.findings).toHaveLength(1);
    expect(asTool.tools![0]!.function.description).toBe(`mail ${PLACEHOLDER}`);
    expect(both.function.description).toBe(`mail ${EMAIL}`);

    const other = deepFreeze({ role: 'user' as const, content: `write ${EMAIL}`, type: 'function' as const, function: { name: 'g', description: 'clean' } });
    expect((await checkPrompt(workers.asPool(), guardrails(), chatRequest({ tools: [other] }), 10, 'o200k_base')).findings).toEqual([]);
    const request = chatRequest({ messages: [other] });
    expect((await checkPrompt(workers.asPool(), guardrails(), request, 10, 'o200k_base')).findings).toHaveLength(1);
    expect(JSON.stringify(request)).not.toContain(EMAIL);
  });

  it('leaves a clean request untouched', async () => {
    const workers = new FakeWorkers();
    const request = chatRequest();
    const before = JSON.stringify(request);
    const verdict = await checkPrompt(workers.asPool(), guardrails(), request, 10, 'o200k_base');
    expect(verdict).toEqual({ blocked: undefined, findings: [], redacted: false, bodyBytesDelta: 0 });
    expect(JSON.stringify(request)).toBe(before);
  });

  it('stops at a block and reports it with the findings so far', async () => {
    const workers = new FakeWorkers();
    const block: Finding = { rule: 'deny_word:0', action: 'block', start: 0, end: 4 };
    const flag: Finding = { rule: 'pii:phone', action: 'flag', start: 1, end: 2 };
    const answers: ScanResult[] = [{ blocked: undefined, redacted: undefined, findings: [flag] }, { blocked: block, redacted: undefined, findings: [block] }, CLEAN];
    workers.scanAnswer = () => answers.shift()!;
    workers.countAnswer = () => 1_000_000;
    const request = chatRequest({ messages: [{ role: 'user', content: 'one' }, { role: 'user', content: 'two' }, { role: 'user', content: 'three' }] });
    const verdict = await checkPrompt(workers.asPool(), guardrails({ maxInputTokens: 1 }), request, 100, 'o200k_base');
    expect(verdict).toEqual({ blocked: block, findings: [flag, block], redacted: false, bodyBytesDelta: 0 });
    // A blocked prompt is not counted.
    expect(workers.counts).toEqual([]);
  });

  it('does not scan when the policy does not scan input', async () => {
    const workers = new FakeWorkers();
    await checkPrompt(workers.asPool(), guardrails({ scansInput: false }), promptWithEmails(), 10, 'o200k_base');
    expect(workers.scans).toEqual([]);
  });

  it('counts max_input_tokens only when the byte bound is over it, and blocks past it', async () => {
    const workers = new FakeWorkers();
    const guard = guardrails({ scansInput: false, maxInputTokens: 50 });
    const request = chatRequest();
    workers.countAnswer = () => 51;

    expect((await checkPrompt(workers.asPool(), guard, request, 50, 'o200k_base')).blocked).toBeUndefined();
    expect(workers.counts).toEqual([]);

    const verdict = await checkPrompt(workers.asPool(), guard, request, 51, 'cl100k_base');
    const finding = { rule: MAX_INPUT_TOKENS_RULE, action: 'block', start: 0, end: 0 };
    expect(verdict).toEqual({ blocked: finding, findings: [finding], redacted: false, bodyBytesDelta: 0 });
    expect(workers.counts).toEqual([{ kind: 'chat', messages: request.messages, tools: request.tools, toolChoice: request.tool_choice, encoding: 'cl100k_base' }]);

    workers.countAnswer = () => 50;
    expect((await checkPrompt(workers.asPool(), guard, request, 51, 'cl100k_base')).blocked).toBeUndefined();
  });

  it('without a tokenizer the byte bound is the count', async () => {
    const workers = new FakeWorkers();
    const verdict = await checkPrompt(workers.asPool(), guardrails({ scansInput: false, maxInputTokens: 50 }), chatRequest(), 51, undefined);
    expect(verdict.blocked?.rule).toBe(MAX_INPUT_TOKENS_RULE);
    expect(workers.counts).toEqual([]);
  });

  it('counts the redacted prompt, not the received one', async () => {
    const workers = new FakeWorkers();
    workers.scanAnswer = redacting(EMAIL, PLACEHOLDER);
    let counted = '';
    workers.countAnswer = (job) => {
      counted = JSON.stringify(job);
      return 1;
    };
    const verdict = await checkPrompt(workers.asPool(), guardrails({ maxInputTokens: 1 }), chatRequest({ messages: [{ role: 'user', content: EMAIL }] }), 100, 'o200k_base');
    expect(verdict).toMatchObject({ blocked: undefined, redacted: true });
    expect(counted).toContain(PLACEHOLDER);
    expect(counted).not.toContain(EMAIL);
  });
});

describe('parseAnswer', () => {
  it('parses a string or a byte body', () => {
    expect(parseAnswer('{"a":1}')).toEqual({ a: 1 });
    expect(parseAnswer(new TextEncoder().encode('{"b":"é"}'))).toEqual({ b: 'é' });
  });

  it('answers NR_UPSTREAM_BAD_RESPONSE for a body that is not JSON', () => {
    for (const garbage of ['<html>502</html>', '', '{"a":', new Uint8Array([0xff, 0x7b])]) {
      let caught: unknown;
      try {
        parseAnswer(garbage);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(GatewayError);
      expect(caught).toMatchObject({ code: 'NR_UPSTREAM_BAD_RESPONSE', status: 502 });
    }
  });
});

describe('checkAnswer', () => {
  const answer = (content: string, args = '{}') => ({
    id: 'c',
    object: 'chat.completion',
    choices: [{ index: 0, message: { role: 'assistant', content, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: args } }] }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
  });

  it('redacts every generated text and re-serializes the answer', async () => {
    const workers = new FakeWorkers();
    workers.scanAnswer = redacting(EMAIL, PLACEHOLDER);
    const body = JSON.stringify(answer(`reach me at ${EMAIL}`, `{"cc":"${EMAIL}"}`));
    const verdict = await checkAnswer(workers.asPool(), guardrails(), parseAnswer(body), body);
    expect(verdict.blocked).toBeUndefined();
    expect(verdict.findings).toHaveLength(2);
    expect(typeof verdict.body).toBe('string');
    expect(verdict.body).not.toContain(EMAIL);
    expect(JSON.parse(verdict.body as string)).toEqual(answer(`reach me at ${PLACEHOLDER}`, `{"cc":"${PLACEHOLDER}"}`));
    expect(workers.scans.every((j) => j.stage === 'output')).toBe(true);
  });

  it('passes the body through as received when nothing was redacted', async () => {
    const workers = new FakeWorkers();
    const flag: Finding = { rule: 'pii:phone', action: 'flag', start: 0, end: 1 };
    workers.scanAnswer = () => ({ blocked: undefined, redacted: undefined, findings: [flag] });
    const body = new TextEncoder().encode(JSON.stringify(answer('hello')));
    const verdict = await checkAnswer(workers.asPool(), guardrails(), parseAnswer(body), body);
    expect(verdict.body).toBe(body);
    expect(verdict.findings).toEqual([flag, flag]);
  });

  it('reports a block with every finding and sends nothing redacted', async () => {
    const workers = new FakeWorkers();
    const block: Finding = { rule: 'deny_word:1', action: 'block', start: 0, end: 3 };
    workers.scanAnswer = (job) => (job.text.startsWith('bad') ? { blocked: block, redacted: undefined, findings: [block] } : redacting(EMAIL, PLACEHOLDER)(job));
    const body = JSON.stringify(answer('bad words', `{"to":"${EMAIL}"}`));
    const verdict = await checkAnswer(workers.asPool(), guardrails(), parseAnswer(body), body);
    expect(verdict.blocked).toBe(block);
    expect(verdict.findings.map((f) => f.rule)).toEqual(['deny_word:1', 'pii:email']);
    expect(verdict.body).toBe(body);
  });
});
