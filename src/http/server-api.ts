// The small HTTP interface every route is written against. Two implementations serve it: a native
// uWebSockets.js build (uws-server.ts), whose objects satisfy it as they are, and Node's own http
// module (node-server.ts) where no native build loads. Routes never see which one runs.

/** Valid only until the handler returns or awaits: read what is needed at once. */
export interface HttpRequest {
  /** The first value of a header (lower-case name), or '' when absent. */
  getHeader(lowerCaseName: string): string;
  /** Lower case. */
  getMethod(): string;
  /** The path, without the query. */
  getUrl(): string;
  /** The raw query string (after `?`), or '' / undefined when there is none. */
  getQuery(): string | undefined;
  /** A `:name` segment of the route's pattern, by position. */
  getParameter(index: number): string | undefined;
  /** Every header, in order, duplicates included (lower-case names). */
  forEach(visit: (name: string, value: string) => void): void;
}

export type Body = string | Uint8Array;

/** After onAborted fired, nothing may be called on it again. */
export interface HttpResponse {
  /** Runs `write` with the socket corked: everything it writes leaves in one syscall. */
  cork(write: () => void): HttpResponse;
  /** Before any header, e.g. '404 Not Found'; 200 when never called. */
  writeStatus(status: string): HttpResponse;
  writeHeader(name: string, value: string): HttpResponse;
  /** A chunk of a response without a known length; false when it was buffered (wait for onWritable). */
  write(chunk: Body): boolean;
  end(body?: Body, closeConnection?: boolean): HttpResponse;
  /** The client went away (or close() cut it off) before the response ended. */
  onAborted(handler: () => void): HttpResponse;
  /** Body chunks; `chunk` is only valid during the call. */
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): HttpResponse;
  /** The client's buffer drained; return true when done waiting. */
  onWritable(handler: (offset: number) => boolean): HttpResponse;
  /** Cuts the connection at once. */
  close(): HttpResponse;
}

export type RouteHandler = (res: HttpResponse, req: HttpRequest) => void;

/** Patterns: static segments, `:name` segments, and a trailing `/*`. More specific patterns win. */
export interface RouteTable {
  get(pattern: string, handler: RouteHandler): unknown;
  post(pattern: string, handler: RouteHandler): unknown;
  patch(pattern: string, handler: RouteHandler): unknown;
  put(pattern: string, handler: RouteHandler): unknown;
  del(pattern: string, handler: RouteHandler): unknown;
  any(pattern: string, handler: RouteHandler): unknown;
}

export type RouteMethod = keyof RouteTable;
export const ROUTE_METHODS: readonly RouteMethod[] = ['get', 'post', 'patch', 'put', 'del', 'any'];

export interface HttpApp extends RouteTable {
  /**
   * Resolves with the bound port; rejects when the address cannot be had (in use, not local).
   * `reusePort`: share the port with other processes that ask for it too (SO_REUSEPORT).
   */
  listen(host: string, port: number, options?: { readonly reusePort?: boolean }): Promise<number>;
  /** Stops accepting connections; open ones go on. */
  stopListening(): void;
  /** Closes every connection still open. */
  closeAll(): void;
}

export interface HttpServerImplementation {
  readonly name: 'uws' | 'node';
  /** What runs: the npm build and its binary, or `node:http`. */
  readonly build: string;
  readonly native: boolean;
  createApp(): HttpApp;
}
