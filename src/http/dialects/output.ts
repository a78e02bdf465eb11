// One admitted request's answer in its route's dialect: the dialect's per-request session and, for
// a stream, its encoder writing into one reused frame array. There is none for OpenAI chat (the
// identity), so that path has nothing to call.
import type { ClientDialect, DialectContext, DialectSession, Frame, StreamEncoder } from './dialect.js';

export class DialectOutput {
  private readonly encoded: Frame[] = [];
  private readonly encoder: StreamEncoder | undefined;

  private constructor(
    private readonly session: DialectSession,
    stream: boolean,
  ) {
    this.encoder = stream ? session.streamEncoder() : undefined;
  }

  static open(dialect: ClientDialect, ctx: DialectContext, stream: boolean): DialectOutput | undefined {
    return dialect.identity ? undefined : new DialectOutput(dialect.open(ctx), stream);
  }

  /** The client's frames for these upstream frames, in an array reused by the next call (write it at once); throws on garbage. */
  frames(upstream: readonly Frame[]): Frame[] {
    const out = this.encoded;
    out.length = 0;
    this.encoder?.frames(upstream, out);
    return out;
  }

  /** The frames that close the stream (same reused array). */
  closing(): Frame[] {
    const out = this.encoded;
    out.length = 0;
    this.encoder?.end(out);
    return out;
  }

  /** A complete answer in the client's format; throws on garbage. */
  completion(body: string | Uint8Array): string | Uint8Array {
    return this.session.completion(body);
  }

  /** The dialect's seal of a complete answer, or undefined when it has none. */
  seal(): Promise<void> | undefined {
    return this.session.seal?.();
  }
}
