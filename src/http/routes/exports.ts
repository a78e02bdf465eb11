// Streaming exports under the admin API: GET /admin/v1/orgs/:org/logs/export and
// /admin/v1/orgs/:org/ledger/export?from=ISO&to=ISO&format=ndjson|csv. Authorized like every admin
// route (the platform, or the org's admin key), then read through pg-cursor in one tenant
// transaction (logs/exports.ts) and written into uWebSockets.js with backpressure: when a write
// does not go out whole, the cursor is not read again until the socket drains. A client that
// leaves closes the cursor and gives the connection back; one that stops reading is cut off.
import { asDatabaseError, type Database } from '../../db/database.js';
import { GatewayError, invalidRequest, toGatewayError } from '../../errors/gateway-error.js';
import { log } from '../../log.js';
import { streamExport, type ExportFormat, type ExportKind, type ExportRange, type ExportSink } from '../../logs/exports.js';
import { inTimeRange, TIME_RANGE_PROBLEM } from '../../tenancy/admin-schemas.js';
import type { AdminService } from '../../tenancy/admin-service.js';
import type { RequestAuthenticator } from '../authenticate.js';
import { sendError } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse, RouteTable } from '../server-api.js';

export interface ExportOptions {
  /** Rows read from the cursor per batch (one write each). */
  readonly batchRows: number;
  /** Exports running at once per instance; each holds a pool connection for its duration. */
  readonly maxConcurrent: number;
  /** A client that reads nothing this long while the export waits on it is cut off. */
  readonly stalledClientTimeoutMs: number;
}

export interface ExportRouteDeps {
  readonly admin: AdminService;
  readonly auth: RequestAuthenticator;
  readonly db: Pick<Database, 'withTenant'>;
  readonly exports?: Partial<ExportOptions>;
}

export const EXPORT_DEFAULTS: ExportOptions = { batchRows: 1_000, maxConcurrent: 2, stalledClientTimeoutMs: 60_000 };

/** Exports running in this process and batches written, for metrics and tests. */
export const exportStats = { active: 0, batchesSent: 0 };

const ROUTES: ReadonlyArray<[path: string, kind: ExportKind]> = [
  ['/admin/v1/orgs/:org/logs/export', 'logs'],
  ['/admin/v1/orgs/:org/ledger/export', 'ledger'],
];

/** Registers the export routes; returns their paths and methods, for the 405 fallbacks. */
export function registerExportRoutes(app: RouteTable, deps: ExportRouteDeps): Map<string, Array<'get'>> {
  const options = { ...EXPORT_DEFAULTS, ...deps.exports };
  const paths = new Map<string, Array<'get'>>();
  for (const [path, kind] of ROUTES) {
    app.get(path, exportHandler(deps, options, kind));
    paths.set(path, ['get']);
  }
  return paths;
}

function exportHandler(deps: ExportRouteDeps, options: ExportOptions, kind: ExportKind) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    const org = req.getParameter(0) ?? '';
    const query = new URLSearchParams(req.getQuery() ?? '');
    const auth = deps.auth.authenticate(req.getHeader('authorization'), req.getHeader('x-api-key'));
    const out = new ResponseStream(res, requestId, options.stalledClientTimeoutMs);
    const run = async () => {
      const caller = await auth;
      if (caller instanceof GatewayError) throw caller;
      // Authorizes (platform or the org's admin key) and answers 404 for an org that is not there.
      const orgId = (await deps.admin.getOrg(caller, org)).id;
      const { range, format } = parseExportQuery(query);
      if (exportStats.active >= options.maxConcurrent) throw new GatewayError('NR_RATE_LIMITED', 'Too many exports are running; retry shortly.', { retryAfterS: 5 });
      exportStats.active++;
      try {
        out.setContent(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson', `${kind}-${orgId}.${format}`);
        const rows = await deps.db.withTenant(orgId, (client) => streamExport(client, kind, range, format, out, options.batchRows));
        if (!out.gone) log.info('export finished', { requestId, kind, orgId, rows });
        out.end();
      } finally {
        exportStats.active--;
      }
    };
    run().catch((err: unknown) => out.fail(toGatewayError(asDatabaseError(err))));
  };
}

/** `from` and `to` (ISO 8601, `to` exclusive) are required; `format` is ndjson (default) or csv. */
export function parseExportQuery(query: URLSearchParams): { range: ExportRange; format: ExportFormat } {
  const format = query.get('format') ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'csv') throw invalidRequest('`format` must be ndjson or csv.', 'format');
  const from = isoTime(query.get('from'), 'from');
  const to = isoTime(query.get('to'), 'to');
  if (to.getTime() <= from.getTime()) throw invalidRequest('`to` must be after `from`.', 'to');
  return { range: { from, to }, format };
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** A time without an offset is UTC, whatever the server's time zone. */
function isoTime(value: string | null, param: string): Date {
  if (value === null || value === '') throw invalidRequest(`\`${param}\` is required (an ISO 8601 time).`, param);
  const at = ISO_8601.test(value) ? new Date(asUtc(value)) : undefined;
  if (at === undefined || Number.isNaN(at.getTime())) throw invalidRequest(`\`${param}\` must be an ISO 8601 time.`, param);
  if (!inTimeRange(at.getTime())) throw invalidRequest(`\`${param}\` ${TIME_RANGE_PROBLEM}.`, param);
  return at;
}

function asUtc(iso: string): string {
  if (iso.length <= 10) return iso; // a bare date: ECMAScript reads it as UTC already
  const time = iso.slice(10).replace(' ', 'T');
  return iso.slice(0, 10) + (/(?:Z|[+-]\d{2}:?\d{2})$/i.test(time) ? time : `${time}Z`);
}

/** One streamed response: headers on the first write, corked writes, a wait on backpressure. */
class ResponseStream implements ExportSink {
  gone = false;
  private headSent = false;
  private contentType = 'application/x-ndjson';
  private fileName = 'export';
  private resume: ((goOn: boolean) => void) | undefined;
  private stalledTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: HttpResponse,
    private readonly requestId: string,
    private readonly stalledClientTimeoutMs: number,
  ) {
    res.onAborted(() => {
      this.gone = true;
      this.wake(false);
    });
  }

  setContent(contentType: string, fileName: string): void {
    this.contentType = contentType;
    this.fileName = fileName;
  }

  write(chunk: string): boolean | Promise<boolean> {
    if (this.gone) return false;
    let sent = true;
    this.res.cork(() => {
      this.writeHead();
      sent = this.res.write(chunk);
    });
    exportStats.batchesSent++;
    if (sent) return true;
    // uWS keeps what did not go out; nothing more is read until the socket drains.
    return new Promise<boolean>((resolve) => {
      this.resume = resolve;
      this.res.onWritable(() => {
        this.wake(true);
        return true;
      });
      this.stalledTimer = setTimeout(() => {
        if (this.resume === undefined || this.gone) return;
        log.warn('export: client stopped reading; cutting it off', { requestId: this.requestId });
        this.gone = true;
        this.wake(false);
        this.res.close();
      }, this.stalledClientTimeoutMs);
    });
  }

  end(): void {
    if (this.gone) return;
    this.res.cork(() => {
      this.writeHead();
      this.res.end();
    });
  }

  /** Before the first byte: a JSON error. After it: the connection is cut, so the client sees a truncated export, never a short one that looks whole. */
  fail(err: GatewayError): void {
    if (this.gone) return;
    if (!this.headSent) return sendError(this.res, err, this.requestId);
    log.error('export failed mid-stream; connection cut', { requestId: this.requestId, code: err.code, cause: err.cause instanceof Error ? err.cause.message : String(err.cause) });
    this.gone = true;
    this.res.close();
  }

  private writeHead(): void {
    if (this.headSent) return;
    this.headSent = true;
    this.res
      .writeStatus('200 OK')
      .writeHeader('content-type', this.contentType)
      .writeHeader('content-disposition', `attachment; filename="${this.fileName}"`)
      .writeHeader('cache-control', 'no-store')
      .writeHeader('x-request-id', this.requestId);
  }

  private wake(goOn: boolean): void {
    clearTimeout(this.stalledTimer);
    this.stalledTimer = undefined;
    const resume = this.resume;
    this.resume = undefined;
    resume?.(goOn);
  }
}
