// The caller of a /v1 request and its body, whichever arrives first: while the key is being looked
// up the body waits (copied, since a body buffer is only valid during its callback); the platform
// master key is refused (it is for the admin API); then the owner gets the caller and the body once.
import { asDatabaseError } from '../db/database.js';
import { GatewayError, toGatewayError } from '../errors/gateway-error.js';
import type { KeyPrincipal, Principal } from '../tenancy/principal.js';
import type { AuthOutcome } from './authenticate.js';

export interface GateOwner {
  readonly isFinished: boolean;
  fail(err: GatewayError, closeConnection?: boolean): void;
  /** The verified caller and the request body; `body` is only valid during this call. */
  onCallerBody(principal: KeyPrincipal, body: Buffer): void;
}

export class CallerGate {
  private principal: KeyPrincipal | undefined;
  private pending = false;
  private held: Buffer | undefined;

  constructor(private readonly owner: GateOwner) {}

  /** The verified caller, once known (before its body, too). */
  get caller(): KeyPrincipal | undefined {
    return this.principal;
  }

  /** The caller, or a pending key lookup. */
  setCaller(outcome: AuthOutcome): void {
    if (!(outcome instanceof Promise)) return this.onCaller(outcome);
    this.pending = true;
    outcome.then(
      (principal) => this.onCaller(principal),
      (err: unknown) => this.owner.fail(toGatewayError(asDatabaseError(err)), true),
    );
  }

  /** The body arrived; held while the caller is not known yet. */
  onBody(body: Buffer): void {
    const principal = this.principal;
    if (principal !== undefined) return this.owner.onCallerBody(principal, body);
    if (this.pending && !this.owner.isFinished) this.held = Buffer.from(body);
  }

  private onCaller(principal: Principal | GatewayError): void {
    this.pending = false;
    if (this.owner.isFinished) return;
    if (principal instanceof GatewayError) return this.owner.fail(principal, true);
    if (principal.kind === 'platform') {
      return this.owner.fail(new GatewayError('NR_FORBIDDEN', 'The platform master key is for the admin API; call /v1 with an org API key.'), true);
    }
    this.principal = principal;
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) this.owner.onCallerBody(principal, held);
  }
}
