// The generated text of a complete (non-stream) answer, field by field, each with a way to write
// its redacted form back: content, refusal, reasoning and tool-call arguments of every choice.

export interface GeneratedText {
  readonly text: string;
  readonly write: (text: string) => void;
}

const TEXT_FIELDS = ['content', 'refusal', 'reasoning_content'] as const;

export function generatedTexts(completion: unknown): GeneratedText[] {
  const texts: GeneratedText[] = [];
  const choices = (completion as { choices?: unknown } | null)?.choices;
  if (!Array.isArray(choices)) return texts;
  for (const choice of choices as Array<{ message?: unknown }>) {
    const message = choice?.message as Record<string, unknown> | undefined | null;
    if (message == null || typeof message !== 'object') continue;
    for (const field of TEXT_FIELDS) {
      const value = message[field];
      if (typeof value === 'string' && value !== '') texts.push({ text: value, write: (text) => (message[field] = text) });
    }
    const calls = Array.isArray(message.tool_calls) ? (message.tool_calls as Array<{ function?: { arguments?: unknown } }>) : [];
    for (const call of calls) {
      const fn = call?.function;
      if (typeof fn?.arguments === 'string' && fn.arguments !== '') texts.push({ text: fn.arguments, write: (text) => (fn.arguments = text) });
    }
  }
  return texts;
}
