// The client's x-request-id when it is a sane token, else a fresh one.
import { randomUUID } from 'node:crypto';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdFrom(header: string): string {
  return header !== '' && SAFE_ID.test(header) ? header : randomUUID();
}
