// How the console writes numbers, money and times, and reads them back from form fields. The API
// counts money in micro-credits; people read and type credits.

const MICROS = 1_000_000;

export function credits(micros: number | null | undefined): string {
  if (micros === null || micros === undefined) return '—';
  return (micros / MICROS).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 });
}

export function count(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : n.toLocaleString('en-US');
}

/** "1 request", "3 requests". */
export function plural(n: number, word: string): string {
  return `${count(n)} ${n === 1 ? word : `${word}s`}`;
}

export function ms(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : `${n.toLocaleString('en-US', { maximumFractionDigits: 1 })} ms`;
}

/** UTC, to the second: every server-side day boundary is a UTC one. */
export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export function day(iso: string): string {
  return iso.slice(0, 10);
}

/** A credits field: blank is "none" (null); otherwise a non-negative amount in micro-credits. */
export function parseCredits(text: string, label: string): number | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  const value = Number(trimmed);
  if (!Number.isFinite(value)) throw new Error(`${label}: "${trimmed}" is not a number.`);
  return Math.round(value * MICROS);
}

/** A whole-number field: blank is "none" (null). */
export function parseWhole(text: string, label: string): number | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  const value = Number(trimmed);
  if (!Number.isInteger(value)) throw new Error(`${label}: "${trimmed}" is not a whole number.`);
  return value;
}

export function creditsField(micros: number | null): string {
  return micros === null ? '' : String(micros / MICROS);
}

/** YYYY-MM-DD of a UTC day, `offsetDays` from today. */
export function utcDay(offsetDays = 0, from = new Date()): string {
  return new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate() + offsetDays)).toISOString().slice(0, 10);
}

export function startOfMonth(from = new Date()): string {
  return new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), 1)).toISOString().slice(0, 10);
}

/** [from, to) for the UTC days `first` through `last`, inclusive. */
export function dayRange(first: string, last: string): { from: string; to: string } {
  const end = new Date(`${last}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  return { from: `${first}T00:00:00Z`, to: end.toISOString() };
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '—';
}

export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
