// The one import of uWebSockets.js. The package is an npm alias (see package.json), so swapping
// the build is a one-line change there; every other module takes uWS from here.
import uws from 'uWebSockets.js';

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';

/** The unofficial build silently falls back to a slow JS server when no native binary matches. */
export const uwsNative: boolean = typeof (uws as { SSLApp?: unknown }).SSLApp === 'function';
export const uwsImplementation = uwsNative ? 'native' : 'js-fallback';

export const { App, us_listen_socket_close, us_socket_local_port } = uws;
