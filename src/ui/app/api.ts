// The console's only way out: the gateway's admin API (and GET /v1/models), called with the key the
// user signed in with. Errors keep the API's own words: the message, status and code it answered.

export type Query = Record<string, string | number | undefined>;

/** An error answer of the API, or a gateway that could not be reached (status 0). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
    readonly param: string | null | undefined,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: { message?: unknown; code?: unknown; param?: unknown };
}

export interface List<T> {
  object: 'list';
  data: T[];
}

export class Api {
  constructor(private readonly key: string) {}

  get<T>(path: string, query?: Query): Promise<T> {
    return this.call<T>('GET', path, query);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, undefined, body);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('PATCH', path, undefined, body);
  }

  /** A streamed export, whole, with the file name the gateway gave it. */
  async download(path: string, query: Query): Promise<{ blob: Blob; fileName: string }> {
    const res = await this.fetch('GET', path, query);
    if (!res.ok) throw await errorOf(res);
    const disposition = res.headers.get('content-disposition') ?? '';
    const fileName = /filename="([^"]+)"/.exec(disposition)?.[1] ?? 'export';
    return { blob: await res.blob(), fileName };
  }

  private async call<T>(method: string, path: string, query?: Query, body?: unknown): Promise<T> {
    const res = await this.fetch(method, path, query, body);
    if (!res.ok) throw await errorOf(res);
    return (await res.json()) as T;
  }

  private async fetch(method: string, path: string, query?: Query, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      return await fetch(withQuery(path, query), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
    } catch (err) {
      throw new ApiError(`The gateway could not be reached (${err instanceof Error ? err.message : String(err)}).`, 0, undefined, undefined);
    }
  }
}

export function withQuery(path: string, query?: Query): string {
  if (query === undefined) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(name, String(value));
  const text = params.toString();
  return text === '' ? path : `${path}?${text}`;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const { error } = JSON.parse(text) as ErrorBody;
    if (error !== undefined && typeof error.message === 'string') {
      return new ApiError(error.message, res.status, typeof error.code === 'string' ? error.code : undefined, typeof error.param === 'string' ? error.param : null);
    }
  } catch {
    // Not the API's JSON (a proxy's page): say what came back.
  }
  return new ApiError(`HTTP ${res.status} ${res.statusText}`.trim(), res.status, undefined, undefined);
}

/** Admin API paths of one org. */
export const orgPath = (orgId: string, rest = ''): string => `/admin/v1/orgs/${encodeURIComponent(orgId)}${rest}`;
