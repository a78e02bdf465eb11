// An OpenAI Responses request (POST /v1/responses) as an OpenAI chat request: instructions become a
// first system message; input items become messages (input_text / output_text parts as text,
// input_image as image_url, function_call items as an assistant's tool_calls, function_call_output
// items as tool messages); max_output_tokens, function tools, tool_choice and text.format map to
// their chat fields. What has no chat equivalent is dropped only where that is harmless (reasoning,
// truncation "disabled", ...) and refused by name otherwise (hosted tools, files, prompts, ...).
// What a response object repeats of the request (and store, previous_response_id) is kept beside the
// chat request, keyed by it, for the session that answers it.
import { GatewayError, invalidRequest } from '../../errors/gateway-error.js';
import type { ChatMessage, ChatRequest, ChatTool, ContentPart, ToolCall } from '../../providers/types.js';
import { validateChatRequest } from '../validate-chat-request.js';
import { isRecord, parseJsonObject } from './parse.js';

/** The request fields a response object repeats, in OpenAI's shapes. */
export interface ResponseEcho {
  readonly instructions: string | null;
  readonly max_output_tokens: number | null;
  readonly temperature: number | null;
  readonly top_p: number | null;
  readonly tools: readonly unknown[];
  readonly tool_choice: unknown;
  readonly parallel_tool_calls: boolean;
  readonly text: unknown;
  readonly metadata: Readonly<Record<string, string>>;
  readonly previous_response_id: string | null;
  readonly store: boolean;
  readonly user: string | null;
}

export interface ResponsesRequestInfo {
  readonly echo: ResponseEcho;
  /** The system message the instructions became: a continuation does not carry it (as at OpenAI). */
  readonly instructionsMessage: ChatMessage | undefined;
}

/** Fields read below; any other field is refused by name unless HARMLESS accepts its value. */
const HANDLED = new Set(['model', 'input', 'instructions', 'max_output_tokens', 'temperature', 'top_p', 'tools', 'tool_choice', 'parallel_tool_calls', 'text', 'stream', 'store', 'previous_response_id', 'metadata', 'user', 'reasoning']);
/** No chat equivalent, and nothing lost by leaving them out with these values. */
const HARMLESS: Readonly<Record<string, (value: unknown) => boolean>> = {
  truncation: (v) => v === 'disabled',
  background: (v) => v === false,
  include: (v) => Array.isArray(v) && v.length === 0,
  service_tier: (v) => v === 'auto' || v === 'default',
  // Obfuscation pads stream events against side channels; this gateway's events carry none.
  stream_options: (v) => isRecord(v) && Object.keys(v).every((k) => k === 'include_obfuscation'),
};
const ROLES = new Set(['user', 'system', 'developer', 'assistant']);
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY_CHARS = 64;
const MAX_METADATA_VALUE_CHARS = 512;

const INFO = new WeakMap<ChatRequest, ResponsesRequestInfo>();
const EFFORTS = new Set(['none', 'minimal', 'low', 'medium', 'high']);

/** `reasoning.effort`, when set; `summary` and `generate_summary` have no chat equivalent and are left out. */
function reasoningEffortOf(value: unknown): string | undefined {
  if (value == null) return undefined;
  if (!isRecord(value)) throw invalidRequest('`reasoning` must be an object.', 'reasoning');
  const effort = value.effort;
  if (effort == null) return undefined;
  if (typeof effort !== 'string' || !EFFORTS.has(effort)) throw invalidRequest('`reasoning.effort` must be one of none, minimal, low, medium, high.', 'reasoning.effort');
  return effort;
}

export function responsesToChatRequest(received: string | Uint8Array): ChatRequest {
  const body = parseJsonObject(received);
  for (const field of Object.keys(body)) {
    const value = body[field];
    if (HANDLED.has(field) || value === null) continue;
    const harmless = HARMLESS[field];
    if (harmless === undefined) throw invalidRequest(`\`${field.slice(0, 64)}\` is not supported.`, field.slice(0, 64));
    if (!harmless(value)) throw invalidRequest(`\`${field}\` is not supported with this value.`, field);
  }
  if (typeof body.model !== 'string' || body.model === '') throw invalidRequest('`model` must be a non-empty string.', 'model');
  const instructions = optionalString(body.instructions, 'instructions');
  const instructionsMessage: ChatMessage | undefined = instructions === null ? undefined : { role: 'system', content: instructions };
  const messages = inputMessages(body.input);
  if (instructionsMessage !== undefined) messages.unshift(instructionsMessage);

  const request: ChatRequest = { model: body.model, messages };
  if (body.stream === true) {
    request.stream = true;
    // The closing response.completed event carries the usage: it must come back at the end of every stream.
    request.stream_options = { include_usage: true };
  } else if (body.stream != null && body.stream !== false) {
    throw invalidRequest('`stream` must be a boolean.', 'stream');
  }
  if (body.max_output_tokens != null) request.max_tokens = positiveInteger(body.max_output_tokens, 'max_output_tokens');
  if (body.temperature != null) request.temperature = body.temperature as number;
  if (body.top_p != null) request.top_p = body.top_p as number;
  const tools = body.tools == null ? [] : toolsOf(body.tools);
  if (tools.length > 0) request.tools = tools.map(toChatTool);
  const toolChoice = body.tool_choice == null ? 'auto' : toolChoiceOf(body.tool_choice);
  if (body.tool_choice != null) request.tool_choice = typeof toolChoice === 'string' ? toolChoice : { type: 'function', function: { name: (toolChoice as { name: string }).name } };
  if (body.parallel_tool_calls != null) {
    if (typeof body.parallel_tool_calls !== 'boolean') throw invalidRequest('`parallel_tool_calls` must be a boolean.', 'parallel_tool_calls');
    request.parallel_tool_calls = body.parallel_tool_calls;
  }
  const effort = reasoningEffortOf(body.reasoning);
  // Chat's name for it: OpenAI-compatible reasoning models (and the mock) read reasoning_effort.
  if (effort !== undefined) (request as ChatRequest & { reasoning_effort?: string }).reasoning_effort = effort;
  const textOption = textOf(body.text, request);
  const user = optionalString(body.user, 'user');
  if (user !== null) request.user = user;
  if (body.store != null && typeof body.store !== 'boolean') throw invalidRequest('`store` must be a boolean.', 'store');
  const previous = optionalString(body.previous_response_id, 'previous_response_id');
  if (previous === '') throw invalidRequest('`previous_response_id` must not be empty.', 'previous_response_id');

  const validated = validateChatRequest(request);
  INFO.set(validated, {
    instructionsMessage,
    echo: {
      instructions,
      max_output_tokens: request.max_tokens ?? null,
      temperature: request.temperature ?? null,
      top_p: request.top_p ?? null,
      tools,
      tool_choice: toolChoice,
      parallel_tool_calls: request.parallel_tool_calls !== false,
      text: textOption,
      metadata: metadataOf(body.metadata),
      previous_response_id: previous,
      store: body.store !== false,
      user,
    },
  });
  return validated;
}

/** What parseRequest kept of a Responses request (the same object, or a continuation of it). */
export function responsesRequestInfo(request: ChatRequest): ResponsesRequestInfo {
  const info = INFO.get(request);
  if (info === undefined) throw new GatewayError('NR_INTERNAL', undefined, { cause: new Error('responses: a request the dialect did not parse') });
  return info;
}

/** The request with a stored conversation before its own input (after its instructions, if any). */
export function continuation(request: ChatRequest, previous: readonly ChatMessage[]): ChatRequest {
  const info = responsesRequestInfo(request);
  const own = request.messages;
  const messages = info.instructionsMessage === undefined ? [...previous, ...own] : [own[0]!, ...previous, ...own.slice(1)];
  const continued = { ...request, messages };
  INFO.set(continued, info);
  return continued;
}

function inputMessages(input: unknown): ChatMessage[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  if (!Array.isArray(input) || input.length === 0) throw invalidRequest('`input` must be a string or a non-empty array of input items.', 'input');
  const messages: ChatMessage[] = [];
  input.forEach((item, i) => addItem(item, `input[${i}]`, messages));
  if (messages.length === 0) throw invalidRequest('`input` holds no message.', 'input');
  return messages;
}

function addItem(item: unknown, at: string, out: ChatMessage[]): void {
  if (!isRecord(item)) throw invalidRequest('Each input item must be an object.', at);
  switch (item.type ?? 'message') {
    case 'message':
      out.push(messageOf(item, at));
      return;
    case 'function_call': {
      for (const field of ['call_id', 'name', 'arguments'] as const) {
        if (typeof item[field] !== 'string') throw invalidRequest(`A function_call item needs \`${field}\` (a string).`, `${at}.${field}`);
      }
      const call: ToolCall = { id: item.call_id as string, type: 'function', function: { name: item.name as string, arguments: item.arguments as string } };
      // Calls of one turn follow its message (or each other): one assistant message, as chat has it.
      const last = out.at(-1);
      if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call];
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
      return;
    }
    case 'function_call_output':
      if (typeof item.call_id !== 'string') throw invalidRequest('A function_call_output item needs `call_id` (a string).', `${at}.call_id`);
      out.push({ role: 'tool', tool_call_id: item.call_id, content: outputText(item.output, `${at}.output`) });
      return;
    case 'reasoning':
      // An earlier turn's reasoning, passed back: chat has no place for it, and the answer does not need it.
      return;
    default:
      throw invalidRequest(`Input items of type ${JSON.stringify(String(item.type).slice(0, 64))} are not supported.`, `${at}.type`);
  }
}

function messageOf(item: Record<string, unknown>, at: string): ChatMessage {
  const role = item.role;
  if (typeof role !== 'string' || !ROLES.has(role)) throw invalidRequest('`role` must be user, system, developer or assistant.', `${at}.role`);
  const chatRole = role as 'user' | 'system' | 'developer' | 'assistant';
  const content = item.content;
  if (typeof content === 'string') return { role: chatRole, content };
  if (!Array.isArray(content)) throw invalidRequest('`content` must be a string or an array of content parts.', `${at}.content`);
  const parts = content.map((part, j) => contentPart(part, chatRole, `${at}.content[${j}]`));
  // An assistant's earlier answer goes back as its text (tool calls of the turn may join it).
  if (chatRole === 'assistant') return { role: chatRole, content: parts.map((p) => (p.type === 'text' ? p.text : '')).join('') };
  return { role: chatRole, content: parts };
}

function contentPart(part: unknown, role: string, at: string): ContentPart {
  if (!isRecord(part)) throw invalidRequest('Each content part must be an object.', at);
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      if (typeof part.text !== 'string') throw invalidRequest(`An ${part.type} part needs \`text\` (a string).`, `${at}.text`);
      return { type: 'text', text: part.text };
    case 'refusal':
      if (role !== 'assistant' || typeof part.refusal !== 'string') throw invalidRequest('A refusal part belongs in an assistant message, with `refusal` (a string).', at);
      return { type: 'text', text: part.refusal };
    case 'input_image':
      if (role !== 'user') throw invalidRequest('Images belong in user messages.', at);
      if (typeof part.image_url !== 'string' || part.image_url === '') {
        throw invalidRequest(part.file_id != null ? 'Images by `file_id` are not supported; send `image_url` (a URL or a data URL).' : 'An input_image part needs `image_url` (a URL or a data URL).', `${at}.image_url`);
      }
      return { type: 'image_url', image_url: { url: part.image_url, ...(typeof part.detail === 'string' ? { detail: part.detail } : {}) } };
    default:
      throw invalidRequest(`Content parts of type ${JSON.stringify(String(part.type).slice(0, 64))} are not supported.`, `${at}.type`);
  }
}

/** A function's output: a string, or input_text parts. */
function outputText(output: unknown, at: string): string {
  if (typeof output === 'string') return output;
  if (!Array.isArray(output)) throw invalidRequest('`output` must be a string or an array of input_text parts.', at);
  return output
    .map((part, k) => {
      if (isRecord(part) && part.type === 'input_text' && typeof part.text === 'string') return part.text;
      throw invalidRequest('Only input_text parts are supported in a function output.', `${at}[${k}]`);
    })
    .join('');
}

interface FunctionTool {
  readonly type: 'function';
  readonly name: string;
  readonly description: string | null;
  readonly parameters: Record<string, unknown> | null;
  readonly strict: boolean | null;
}

function toolsOf(value: unknown): FunctionTool[] {
  if (!Array.isArray(value)) throw invalidRequest('`tools` must be an array.', 'tools');
  return value.map((tool, i) => {
    const at = `tools[${i}]`;
    if (!isRecord(tool)) throw invalidRequest('Each tool must be an object.', at);
    if (tool.type !== 'function') throw invalidRequest(`Tools of type ${JSON.stringify(String(tool.type).slice(0, 64))} are not supported: only function tools.`, `${at}.type`);
    if (typeof tool.name !== 'string') throw invalidRequest('A function tool needs `name` (a string).', `${at}.name`);
    if (tool.description != null && typeof tool.description !== 'string') throw invalidRequest('`description` must be a string.', `${at}.description`);
    if (tool.parameters != null && !isRecord(tool.parameters)) throw invalidRequest('`parameters` must be a JSON schema object.', `${at}.parameters`);
    if (tool.strict != null && typeof tool.strict !== 'boolean') throw invalidRequest('`strict` must be a boolean.', `${at}.strict`);
    return { type: 'function', name: tool.name, description: (tool.description as string | undefined) ?? null, parameters: (tool.parameters as Record<string, unknown> | undefined) ?? null, strict: (tool.strict as boolean | undefined) ?? null };
  });
}

function toChatTool(tool: FunctionTool): ChatTool {
  const fn: ChatTool['function'] & { strict?: boolean } = { name: tool.name };
  if (tool.description !== null) fn.description = tool.description;
  if (tool.parameters !== null) fn.parameters = tool.parameters;
  if (tool.strict !== null) fn.strict = tool.strict;
  return { type: 'function', function: fn };
}

/** The tool choice as the response repeats it: a mode, or {type: 'function', name}. */
function toolChoiceOf(value: unknown): unknown {
  if (value === 'auto' || value === 'none' || value === 'required') return value;
  if (typeof value === 'string') throw invalidRequest('`tool_choice` must be auto, none, required or {type: "function", name}.', 'tool_choice');
  if (!isRecord(value)) throw invalidRequest('`tool_choice` must be a string or an object.', 'tool_choice');
  if (value.type !== 'function') throw invalidRequest(`\`tool_choice\` of type ${JSON.stringify(String(value.type).slice(0, 64))} is not supported: only function tools.`, 'tool_choice.type');
  if (typeof value.name !== 'string') throw invalidRequest('`tool_choice.name` is required for type "function".', 'tool_choice.name');
  return { type: 'function', name: value.name };
}

/** text.format as response_format and text.verbosity as verbosity, set on `request`; the `text` the response repeats. */
function textOf(value: unknown, request: ChatRequest): unknown {
  if (value == null) return { format: { type: 'text' } };
  if (!isRecord(value)) throw invalidRequest('`text` must be an object.', 'text');
  for (const key of Object.keys(value)) if (key !== 'format' && key !== 'verbosity') throw invalidRequest(`\`text.${key.slice(0, 64)}\` is not supported.`, `text.${key.slice(0, 64)}`);
  const format = value.format ?? { type: 'text' };
  if (!isRecord(format)) throw invalidRequest('`text.format` must be an object.', 'text.format');
  switch (format.type) {
    case 'text':
      break;
    case 'json_object':
      request.response_format = { type: 'json_object' };
      break;
    case 'json_schema': {
      if (typeof format.name !== 'string' || format.name === '') throw invalidRequest('`text.format.name` is required for json_schema.', 'text.format.name');
      if (!isRecord(format.schema)) throw invalidRequest('`text.format.schema` must be a JSON schema object.', 'text.format.schema');
      if (format.description != null && typeof format.description !== 'string') throw invalidRequest('`text.format.description` must be a string.', 'text.format.description');
      if (format.strict != null && typeof format.strict !== 'boolean') throw invalidRequest('`text.format.strict` must be a boolean.', 'text.format.strict');
      const schema: Record<string, unknown> = { name: format.name, schema: format.schema };
      if (format.description != null) schema.description = format.description;
      if (format.strict != null) schema.strict = format.strict;
      request.response_format = { type: 'json_schema', json_schema: schema };
      break;
    }
    default:
      throw invalidRequest('`text.format.type` must be text, json_object or json_schema.', 'text.format.type');
  }
  if (value.verbosity != null) {
    if (value.verbosity !== 'low' && value.verbosity !== 'medium' && value.verbosity !== 'high') throw invalidRequest('`text.verbosity` must be low, medium or high.', 'text.verbosity');
    request.verbosity = value.verbosity;
  }
  return value.verbosity == null ? { format } : { format, verbosity: value.verbosity };
}

function metadataOf(value: unknown): Record<string, string> {
  if (value == null) return {};
  if (!isRecord(value)) throw invalidRequest('`metadata` must be an object of strings.', 'metadata');
  const keys = Object.keys(value);
  if (keys.length > MAX_METADATA_KEYS) throw invalidRequest(`\`metadata\` may hold at most ${MAX_METADATA_KEYS} keys.`, 'metadata');
  for (const key of keys) {
    const v = value[key];
    if (key.length > MAX_METADATA_KEY_CHARS || typeof v !== 'string' || v.length > MAX_METADATA_VALUE_CHARS) {
      throw invalidRequest(`\`metadata\` keys are at most ${MAX_METADATA_KEY_CHARS} characters and values strings of at most ${MAX_METADATA_VALUE_CHARS}.`, 'metadata');
    }
  }
  return value as Record<string, string>;
}

function optionalString(value: unknown, param: string): string | null {
  if (value == null) return null;
  if (typeof value !== 'string') throw invalidRequest(`\`${param}\` must be a string.`, param);
  return value;
}

function positiveInteger(value: unknown, param: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw invalidRequest(`\`${param}\` must be a positive integer.`, param);
  return value;
}
