// What the mock answers when plain words would not do: one tool call when the request offers tools
// (unless tool_choice is "none" or the last message is a tool result), JSON when response_format
// asks for it. Pure: the same request always gets the same answer, built from its JSON schemas.

/** A structured answer: its text (JSON, or a tool call's arguments) in the pieces it streams as, one token each. */
export type StructuredAnswer =
  | { readonly kind: 'json'; readonly pieces: readonly string[] }
  | { readonly kind: 'tool_call'; readonly id: string; readonly name: string; readonly pieces: readonly string[] };

/** What describeCompletion reads of a request for this; every field untrusted. */
export interface StructuredRequest {
  messages?: unknown;
  tools?: unknown;
  tool_choice?: unknown;
  response_format?: unknown;
}

/** Deepest nesting a schema is followed to ($ref cycles, hostile schemas). */
const MAX_DEPTH = 8;
/** A schema's minItems is honoured up to this. */
const MAX_ITEMS = 4;

/**
 * The request's structured answer, or undefined for plain text. `words` are handed out in order
 * wherever a string is needed; a json_object answer is `{"answer": "<textTokens words>"}`.
 */
export function structuredAnswer(body: StructuredRequest, textTokens: number, toolCallId: string, words: readonly string[]): StructuredAnswer | undefined {
  const tool = toolToCall(body);
  if (tool !== undefined) {
    const args = exampleOf(tool.parameters ?? { type: 'object' }, new Walk(tool.parameters, words));
    return { kind: 'tool_call', id: toolCallId, name: tool.name, pieces: splitPieces(JSON.stringify(args)) };
  }
  const format = body.response_format as { type?: unknown; json_schema?: { schema?: unknown } } | null | undefined;
  if (format?.type === 'json_schema' && isObject(format.json_schema?.schema)) {
    const schema = format.json_schema.schema;
    return { kind: 'json', pieces: splitPieces(JSON.stringify(exampleOf(schema, new Walk(schema, words)))) };
  }
  if (format?.type === 'json_schema' || format?.type === 'json_object') {
    const walk = new Walk(undefined, words);
    const answer = Array.from({ length: textTokens }, () => walk.nextWord()).join(' ');
    return { kind: 'json', pieces: splitPieces(JSON.stringify({ answer })) };
  }
  return undefined;
}

interface ToolFunction {
  name: string;
  parameters?: unknown;
}

/** The tool tool_choice names, else the first; none when tools are off or a tool result is being answered. */
function toolToCall(body: StructuredRequest): ToolFunction | undefined {
  const { tools, tool_choice: choice, messages } = body;
  if (!Array.isArray(tools) || tools.length === 0 || choice === 'none') return undefined;
  if (Array.isArray(messages) && (messages.at(-1) as { role?: unknown } | null | undefined)?.role === 'tool') return undefined;
  const functions: ToolFunction[] = [];
  for (const tool of tools) {
    const fn = (tool as { function?: unknown } | null)?.function as { name?: unknown; parameters?: unknown } | undefined;
    if (typeof fn?.name === 'string') functions.push({ name: fn.name, parameters: fn.parameters });
  }
  const named = (choice as { function?: { name?: unknown } } | null | undefined)?.function?.name;
  return functions.find((fn) => fn.name === named) ?? functions[0];
}

/** One walk over a schema: the root (for local $refs) and the words handed out in order. */
class Walk {
  private used = 0;

  constructor(
    readonly root: unknown,
    private readonly words: readonly string[],
  ) {}

  nextWord(): string {
    return this.words[this.used++ % this.words.length]!;
  }
}

/**
 * A value satisfying the schema's types and required properties, best effort: strings are words
 * (or a sample of their format), numbers and integers 1 (within minimum/maximum), booleans true,
 * arrays one item (or minItems), objects their required properties (every property when the
 * schema lists none as required); enum and const give their first value, anyOf/oneOf their first
 * branch, allOf its branches merged, local $refs are followed.
 */
function exampleOf(schema: unknown, walk: Walk, depth = 0): unknown {
  if (!isObject(schema) || depth > MAX_DEPTH) return depth > MAX_DEPTH ? null : walk.nextWord();
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if (typeof schema.$ref === 'string') return exampleOf(resolveRef(walk.root, schema.$ref), walk, depth + 1);
  for (const key of ['anyOf', 'oneOf'] as const) {
    const branches = schema[key];
    if (Array.isArray(branches) && branches.length > 0) return exampleOf(branches.find((b) => !isNullSchema(b)) ?? branches[0], walk, depth + 1);
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length > 0) {
    const merged: Record<string, unknown> = {};
    for (const part of schema.allOf) {
      const value = exampleOf(part, walk, depth + 1);
      if (isObject(value)) Object.assign(merged, value);
    }
    return merged;
  }
  switch (typeOf(schema)) {
    case 'string':
      return sampleString(schema.format, walk);
    case 'integer':
      return clamp(1, schema, true);
    case 'number':
      return clamp(1, schema, false);
    case 'boolean':
      return true;
    case 'null':
      return null;
    case 'array': {
      const min = typeof schema.minItems === 'number' ? Math.min(MAX_ITEMS, Math.max(0, Math.floor(schema.minItems))) : 1;
      return schema.items === undefined ? [] : Array.from({ length: min }, () => exampleOf(schema.items, walk, depth + 1));
    }
    case 'object': {
      const properties = isObject(schema.properties) ? schema.properties : {};
      const names = Array.isArray(schema.required) ? schema.required.filter((n): n is string => typeof n === 'string') : Object.keys(properties);
      const value: Record<string, unknown> = {};
      for (const name of names) value[name] = exampleOf(properties[name], walk, depth + 1);
      return value;
    }
    default:
      return walk.nextWord();
  }
}

function typeOf(schema: Record<string, unknown>): string | undefined {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') ?? schema.type[0] : schema.type;
  if (typeof type === 'string') return type;
  if (isObject(schema.properties)) return 'object';
  if (schema.items !== undefined) return 'array';
  return undefined;
}

function isNullSchema(schema: unknown): boolean {
  return isObject(schema) && schema.type === 'null';
}

function sampleString(format: unknown, walk: Walk): string {
  switch (format) {
    case 'date-time':
      return '2024-01-01T00:00:00Z';
    case 'date':
      return '2024-01-01';
    case 'time':
      return '00:00:00';
    case 'email':
      return 'owl@example.com';
    case 'uri':
    case 'url':
      return 'https://example.com/';
    case 'uuid':
      return '00000000-0000-4000-8000-000000000000';
    default:
      return walk.nextWord();
  }
}

function clamp(value: number, schema: Record<string, unknown>, integer: boolean): number {
  let v = value;
  if (typeof schema.minimum === 'number' && v < schema.minimum) v = integer ? Math.ceil(schema.minimum) : schema.minimum;
  if (typeof schema.exclusiveMinimum === 'number' && v <= schema.exclusiveMinimum) v = integer ? Math.floor(schema.exclusiveMinimum) + 1 : schema.exclusiveMinimum + 1;
  if (typeof schema.maximum === 'number' && v > schema.maximum) v = integer ? Math.floor(schema.maximum) : schema.maximum;
  return v;
}

/** `#/$defs/X`, `#/definitions/X` or any other JSON pointer into the root schema. */
function resolveRef(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let node = root;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    node = isObject(node) ? node[key] : undefined;
  }
  return node;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Cuts JSON text into the pieces it streams as: each a run up to and including one of
 * ` ,:{}[]`. No piece splits an escape sequence, since none of those characters is in one.
 */
export function splitPieces(text: string): string[] {
  return text.match(/[^ ,:{}[\]]*[ ,:{}[\]]|[^ ,:{}[\]]+/g) ?? [];
}
