// Limits and caps of a key or a team: the four fields of a form, their summary in a table, and the
// body the API takes (null clears one). See docs/money.md#rate-limits-and-spend-caps.
import { Field } from './components';
import { count, credits, creditsField, parseCredits, parseWhole } from './format';
import type { Limits } from './types';

export interface LimitText {
  rpm: string;
  tpm: string;
  daily: string;
  monthly: string;
}

export const NO_LIMITS: LimitText = { rpm: '', tpm: '', daily: '', monthly: '' };

export function limitText(limits: Limits): LimitText {
  return {
    rpm: limits.rpm_limit === null ? '' : String(limits.rpm_limit),
    tpm: limits.tpm_limit === null ? '' : String(limits.tpm_limit),
    daily: creditsField(limits.daily_spend_cap_micros),
    monthly: creditsField(limits.monthly_spend_cap_micros),
  };
}

/** The API's fields; throws with the field's label when one is not a number. */
export function limitBody(text: LimitText): Limits {
  return {
    rpm_limit: parseWhole(text.rpm, 'Requests per minute'),
    tpm_limit: parseWhole(text.tpm, 'Tokens per minute'),
    daily_spend_cap_micros: parseCredits(text.daily, 'Daily spend cap'),
    monthly_spend_cap_micros: parseCredits(text.monthly, 'Monthly spend cap'),
  };
}

export function LimitFields({ value, onChange }: { value: LimitText; onChange(value: LimitText): void }) {
  const set = (name: keyof LimitText) => (event: Event) => onChange({ ...value, [name]: (event.currentTarget as HTMLInputElement).value });
  return (
    <fieldset class="limits">
      <legend>Limits and caps (blank: none)</legend>
      <Field label="Requests per minute">
        <input name="rpm_limit" inputMode="numeric" value={value.rpm} onInput={set('rpm')} />
      </Field>
      <Field label="Tokens per minute">
        <input name="tpm_limit" inputMode="numeric" value={value.tpm} onInput={set('tpm')} />
      </Field>
      <Field label="Daily spend cap (credits)">
        <input name="daily_spend_cap" inputMode="decimal" value={value.daily} onInput={set('daily')} />
      </Field>
      <Field label="Monthly spend cap (credits)">
        <input name="monthly_spend_cap" inputMode="decimal" value={value.monthly} onInput={set('monthly')} />
      </Field>
    </fieldset>
  );
}

export function limitSummary(limits: Limits): string {
  const parts = [
    limits.rpm_limit !== null && `${count(limits.rpm_limit)} req/min`,
    limits.tpm_limit !== null && `${count(limits.tpm_limit)} tok/min`,
    limits.daily_spend_cap_micros !== null && `${credits(limits.daily_spend_cap_micros)}/day`,
    limits.monthly_spend_cap_micros !== null && `${credits(limits.monthly_spend_cap_micros)}/month`,
  ].filter((p): p is string => typeof p === 'string');
  return parts.length === 0 ? 'none' : parts.join(' · ');
}
