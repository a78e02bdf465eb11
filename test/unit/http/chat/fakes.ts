// Hand-written stand-ins for the chat stages' collaborators. Each records its calls and is typed
// against the real class's methods (Pick<...>), so a signature change in src breaks these first;
// the one cast per fake (asLedger ...) is where a class with private state is stood in for.
import { buildConfig, type Config, type ModelRoute } from '../../../../src/config/load.js';
import type { GuardrailEventContext, GuardrailEventLog } from '../../../../src/guardrails/event-log.js';
import type { Finding, KeyGuardrails, ScanResult } from '../../../../src/guardrails/types.js';
import type { Hold, Ledger, Refusal } from '../../../../src/ledger/ledger.js';
import type { ChatRequest } from '../../../../src/providers/types.js';
import type { KeyPrincipal } from '../../../../src/tenancy/principal.js';
import type { Admission, LimitScope, RateLimiter } from '../../../../src/tenancy/rate-limiter.js';
import type { ScanJob, TokenJob } from '../../../../src/workers/messages.js';
import type { WorkerPool } from '../../../../src/workers/pool.js';

export const ORG = '00000000-0000-4000-8000-00000000000a';
export const KEY = '00000000-0000-4000-8000-0000000000b1';

export function principal(patch: Partial<KeyPrincipal> = {}): KeyPrincipal {
  return { kind: 'key', orgId: ORG, keyId: KEY, teamId: null, role: 'member', allowedModels: undefined, expiresAtMs: undefined, limits: [], loggingLevel: 'metadata', logRetentionDays: null, spendCapped: false, ...patch };
}

export function guardrails(patch: Partial<KeyGuardrails> = {}): KeyGuardrails {
  return { policyKey: 'policy-1', policy: { pii: { email: 'redact' } }, scansInput: true, scansOutput: true, maxInputTokens: null, ...patch };
}

/**
 * A real, frozen Config from the schema: `paid` has two deployments of different prices (the
 * dearest input is b's 3, the dearest output a's 2; the smallest max output b's 500), `free`
 * costs nothing, `other` exists for the allow-list, `mixed` has two tokenizers.
 */
export const config: Config = buildConfig(
  {
    models: [
      {
        name: 'paid',
        deployments: [
          { id: 'paid-a', provider: 'mock', model: 'a', inputPricePerMTok: 1, outputPricePerMTok: 2, maxOutputTokens: 1000 },
          { id: 'paid-b', provider: 'mock', model: 'b', inputPricePerMTok: 3, outputPricePerMTok: 1, maxOutputTokens: 500 },
        ],
      },
      { name: 'free', deployments: [{ id: 'free-a', provider: 'mock', model: 'f', maxOutputTokens: 300 }] },
      { name: 'other', deployments: [{ id: 'other-a', provider: 'mock', model: 'o', inputPricePerMTok: 1, outputPricePerMTok: 1 }] },
      {
        name: 'mixed',
        deployments: [
          { id: 'mixed-a', provider: 'openai-compatible', model: 'gpt-4o', baseUrl: 'https://a.test/v1', inputPricePerMTok: 1, outputPricePerMTok: 1 },
          { id: 'mixed-b', provider: 'openai-compatible', model: 'gpt-4', baseUrl: 'https://b.test/v1', inputPricePerMTok: 1, outputPricePerMTok: 1 },
        ],
      },
    ],
  },
  {},
  'unit test',
);

export function route(name: string): ModelRoute {
  const r = config.models.get(name);
  if (r === undefined) throw new Error(`no route ${name}`);
  return r;
}

export function chatRequest(patch: Partial<ChatRequest> = {}): ChatRequest {
  return { model: 'paid', messages: [{ role: 'user', content: 'hello there' }], ...patch };
}

export interface ReserveCall {
  readonly orgId: string;
  readonly keyId: string;
  readonly requestId: string;
  readonly amountMicros: number;
  readonly minAmountMicros: number;
  readonly tokens: number;
  readonly model: string | null | undefined;
}

export interface AdmitCall {
  readonly orgId: string;
  readonly keyId: string;
  readonly requestId: string;
  readonly tokens: number;
}

type LedgerPart = Pick<Ledger, 'reserve' | 'admit' | 'settle' | 'release' | 'settleWhenCounted'>;

export class FakeLedger implements LedgerPart {
  readonly reserves: ReserveCall[] = [];
  readonly admits: AdmitCall[] = [];
  readonly settles: Array<{ readonly hold: Hold; readonly chargeMicros: number }> = [];
  readonly releases: Hold[] = [];
  readonly counted: Array<{ readonly hold: Hold; readonly chargeMicros: Promise<number> }> = [];
  /** What reserve answers: micro-credits held (default: all asked), a refusal, or an error to throw. */
  reserveAnswer: (amountMicros: number, minAmountMicros: number) => number | Refusal | Error = (amount) => amount;
  admitAnswer: Refusal | null | Error = null;
  private holds = 0;

  get calls(): number {
    return this.reserves.length + this.admits.length + this.settles.length + this.releases.length + this.counted.length;
  }

  asLedger(): Ledger {
    return this as unknown as Ledger;
  }

  reserve(orgId: string, keyId: string, requestId: string, amountMicros: number, minAmountMicros: number, tokens: number, model?: string | null): Promise<Hold | Refusal> {
    this.reserves.push({ orgId, keyId, requestId, amountMicros, minAmountMicros, tokens, model });
    const answer = this.reserveAnswer(amountMicros, minAmountMicros);
    if (answer instanceof Error) return Promise.reject(answer);
    if (typeof answer === 'string') return Promise.resolve(answer);
    return Promise.resolve(hold(answer, requestId, `reservation-${++this.holds}`));
  }

  admit(orgId: string, keyId: string, requestId: string, tokens: number): Promise<Refusal | null> {
    this.admits.push({ orgId, keyId, requestId, tokens });
    const answer = this.admitAnswer;
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  }

  settle(hold: Hold, chargeMicros: number): Promise<number> {
    this.settles.push({ hold, chargeMicros });
    return Promise.resolve(chargeMicros);
  }

  release(hold: Hold): Promise<number> {
    this.releases.push(hold);
    return Promise.resolve(hold.amountMicros);
  }

  settleWhenCounted(hold: Hold, chargeMicros: Promise<number>): void {
    this.counted.push({ hold, chargeMicros });
  }
}

export function hold(amountMicros: number, requestId = 'req-1', reservationId = 'reservation-1'): Hold {
  return { orgId: ORG, keyId: KEY, requestId, reservationId, amountMicros };
}

const OPEN_STATE = { limitRequests: undefined, remainingRequests: undefined, limitTokens: undefined, remainingTokens: undefined, resetS: 60 } as const;

export class FakeLimiter implements Pick<RateLimiter, 'admit' | 'giveBack'> {
  readonly admitted: Array<{ readonly scopes: readonly LimitScope[]; readonly tokens: number }> = [];
  readonly givenBack: Array<{ readonly scopes: readonly LimitScope[]; readonly tokens: number; readonly admittedAtMs: number }> = [];
  answer: Admission = { ok: true, state: { ...OPEN_STATE, limitRequests: 10, remainingRequests: 9 } };

  asLimiter(): RateLimiter {
    return this as unknown as RateLimiter;
  }

  admit(scopes: readonly LimitScope[], tokens: number): Admission {
    this.admitted.push({ scopes, tokens });
    return this.answer;
  }

  giveBack(scopes: readonly LimitScope[], tokens: number, admittedAtMs: number): void {
    this.givenBack.push({ scopes, tokens, admittedAtMs });
  }
}

export const CLEAN: ScanResult = { blocked: undefined, redacted: undefined, findings: [] };

export class FakeWorkers implements Pick<WorkerPool, 'scan' | 'countTokens'> {
  readonly scans: ScanJob[] = [];
  readonly counts: TokenJob[] = [];
  scanAnswer: (job: ScanJob) => ScanResult | Promise<ScanResult> = () => CLEAN;
  countAnswer: (job: TokenJob) => number | Promise<number> = (job) => (job.kind === 'text' ? job.text.length : 0);

  asPool(): WorkerPool {
    return this as unknown as WorkerPool;
  }

  scan(job: ScanJob): ScanResult | Promise<ScanResult> {
    this.scans.push(job);
    return this.scanAnswer(job);
  }

  countTokens(job: TokenJob): number | Promise<number> {
    this.counts.push(job);
    return this.countAnswer(job);
  }
}

/** A scan that redacts every occurrence of `word` (findings at its offsets), as the real detectors would. */
export function redacting(word: string, placeholder: string, rule = 'pii:email'): (job: ScanJob) => ScanResult {
  return (job) => {
    const findings: Finding[] = [];
    for (let at = job.text.indexOf(word); at !== -1; at = job.text.indexOf(word, at + word.length)) findings.push({ rule, action: 'redact', start: at, end: at + word.length });
    return findings.length === 0 ? CLEAN : { blocked: undefined, redacted: job.text.split(word).join(placeholder), findings };
  };
}

export class FakeEvents implements Pick<GuardrailEventLog, 'record'> {
  readonly recorded: Array<{ readonly ctx: GuardrailEventContext; readonly stage: 'input' | 'output'; readonly findings: readonly Finding[] }> = [];

  asEventLog(): GuardrailEventLog {
    return this as unknown as GuardrailEventLog;
  }

  record(ctx: GuardrailEventContext, stage: 'input' | 'output', findings: readonly Finding[]): void {
    this.recorded.push({ ctx, stage, findings });
  }
}
