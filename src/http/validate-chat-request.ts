// Validates an OpenAI chat-completions body by hand: this runs on every request, so it walks the
// object once, allocates nothing on success and names the offending `param` on failure.
import { invalidRequest } from '../errors/gateway-error.js';
import type { ChatRequest } from '../providers/types.js';
import { refuseCaseVariantKeys } from './case-variant-keys.js';

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);
const MAX_MESSAGES = 100_000;
const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function validateChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw invalidRequest('The request body must be a JSON object.');
  refuseCaseVariantKeys(body, null);
  const model = body.model;
  if (typeof model !== 'string' || model.length === 0) throw invalidRequest('`model` must be a non-empty string.', 'model');
  validateMessages(body.messages);
  optionalBoolean(body, 'stream');
  const streamOptions = body.stream_options;
  if (streamOptions != null) {
    if (!isObject(streamOptions)) throw invalidRequest('`stream_options` must be an object.', 'stream_options');
    refuseCaseVariantKeys(streamOptions, 'stream_options');
    if (body.stream !== true) throw invalidRequest('`stream_options` is only allowed when `stream` is true.', 'stream_options');
    optionalBoolean(streamOptions, 'include_usage', 'stream_options.include_usage');
  }
  optionalCount(body, 'max_tokens');
  optionalCount(body, 'max_completion_tokens');
  optionalNumber(body, 'temperature', 0, 2);
  optionalNumber(body, 'top_p', 0, 1);
  optionalNumber(body, 'presence_penalty', -2, 2);
  optionalNumber(body, 'frequency_penalty', -2, 2);
  if (body.n != null && body.n !== 1) throw invalidRequest('Only `n: 1` is supported.', 'n');
  validateStop(body.stop);
  validateTools(body.tools);
  if (body.user != null && typeof body.user !== 'string') throw invalidRequest('`user` must be a string.', 'user');
  return body as ChatRequest;
}

/** The output bound the client asked for, if any. */
export function requestedMaxTokens(request: ChatRequest): number | undefined {
  return request.max_completion_tokens ?? request.max_tokens ?? undefined;
}

function validateMessages(messages: unknown): void {
  if (!Array.isArray(messages)) throw invalidRequest('`messages` must be an array of messages.', 'messages');
  if (messages.length === 0) throw invalidRequest('`messages` must contain at least one message.', 'messages');
  if (messages.length > MAX_MESSAGES) throw invalidRequest(`\`messages\` may hold at most ${MAX_MESSAGES} messages.`, 'messages');
  for (let i = 0; i < messages.length; i++) {
    const message: unknown = messages[i];
    const at = `messages[${i}]`;
    if (!isObject(message)) throw invalidRequest(`${at} must be an object.`, at);
    refuseCaseVariantKeys(message, at);
    const role = message.role;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw invalidRequest(`${at}.role must be one of system, developer, user, assistant, tool.`, `${at}.role`);
    }
    if (message.name != null && typeof message.name !== 'string') throw invalidRequest(`${at}.name must be a string.`, `${at}.name`);
    const hasToolCalls = role === 'assistant' && message.tool_calls != null;
    if (hasToolCalls) validateToolCalls(message.tool_calls, `${at}.tool_calls`);
    if (role === 'tool' && typeof message.tool_call_id !== 'string') {
      throw invalidRequest(`${at}.tool_call_id must be a string for tool messages.`, `${at}.tool_call_id`);
    }
    validateContent(message.content, `${at}.content`, role === 'assistant');
  }
}

function validateContent(content: unknown, at: string, mayBeNull: boolean): void {
  if (typeof content === 'string') return;
  if (content == null) {
    if (mayBeNull) return;
    throw invalidRequest(`${at} is required.`, at);
  }
  if (!Array.isArray(content)) throw invalidRequest(`${at} must be a string or an array of content parts.`, at);
  for (let j = 0; j < content.length; j++) {
    const part: unknown = content[j];
    const partAt = `${at}[${j}]`;
    if (!isObject(part)) throw invalidRequest(`${partAt} must be an object.`, partAt);
    refuseCaseVariantKeys(part, partAt);
    if (part.type === 'text') {
      if (typeof part.text !== 'string') throw invalidRequest(`${partAt}.text must be a string.`, `${partAt}.text`);
    } else if (part.type === 'image_url') {
      const image = part.image_url;
      if (!isObject(image) || typeof image.url !== 'string' || image.url.length === 0) {
        throw invalidRequest(`${partAt}.image_url.url must be a non-empty string.`, `${partAt}.image_url`);
      }
      refuseCaseVariantKeys(image, `${partAt}.image_url`);
    } else {
      throw invalidRequest(`${partAt}.type ${JSON.stringify(part.type)} is not supported; use "text" or "image_url".`, `${partAt}.type`);
    }
  }
}

function validateToolCalls(calls: unknown, at: string): void {
  if (!Array.isArray(calls)) throw invalidRequest(`${at} must be an array.`, at);
  for (let k = 0; k < calls.length; k++) {
    const call: unknown = calls[k];
    const fn = isObject(call) ? call.function : undefined;
    if (!isObject(call) || typeof call.id !== 'string' || call.type !== 'function' || !isObject(fn) || typeof fn.name !== 'string' || typeof fn.arguments !== 'string') {
      throw invalidRequest(`${at}[${k}] must be {id, type: "function", function: {name, arguments}} with string fields.`, `${at}[${k}]`);
    }
    refuseCaseVariantKeys(call, `${at}[${k}]`);
    refuseCaseVariantKeys(fn, `${at}[${k}].function`);
  }
}

function validateTools(tools: unknown): void {
  if (tools == null) return;
  if (!Array.isArray(tools)) throw invalidRequest('`tools` must be an array.', 'tools');
  for (let k = 0; k < tools.length; k++) {
    const tool: unknown = tools[k];
    const fn = isObject(tool) ? tool.function : undefined;
    if (!isObject(tool) || tool.type !== 'function' || !isObject(fn) || typeof fn.name !== 'string' || !TOOL_NAME.test(fn.name)) {
      throw invalidRequest(`tools[${k}] must be {type: "function", function: {name}} with a name of 1-64 letters, digits, _ or -.`, `tools[${k}]`);
    }
    if (fn.parameters != null && !isObject(fn.parameters)) throw invalidRequest(`tools[${k}].function.parameters must be an object.`, `tools[${k}].function.parameters`);
    // Not inside `parameters`: a JSON schema may name properties `Name` and `name`.
    refuseCaseVariantKeys(tool, `tools[${k}]`);
    refuseCaseVariantKeys(fn, `tools[${k}].function`);
  }
}

function validateStop(stop: unknown): void {
  if (stop == null || typeof stop === 'string') return;
  if (Array.isArray(stop) && stop.length <= 4 && stop.every((s) => typeof s === 'string')) return;
  throw invalidRequest('`stop` must be a string or an array of at most 4 strings.', 'stop');
}

function optionalBoolean(obj: Record<string, unknown>, key: string, param = key): void {
  const value = obj[key];
  if (value != null && typeof value !== 'boolean') throw invalidRequest(`\`${param}\` must be a boolean.`, param);
}

function optionalCount(obj: Record<string, unknown>, key: string): void {
  const value = obj[key];
  if (value == null) return;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalidRequest(`\`${key}\` must be a positive integer.`, key);
  }
}

function optionalNumber(obj: Record<string, unknown>, key: string, min: number, max: number): void {
  const value = obj[key];
  if (value == null) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidRequest(`\`${key}\` must be a number from ${min} to ${max}.`, key);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
