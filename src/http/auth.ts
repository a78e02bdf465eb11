// Gateway authentication while keys live in config: one master key compared in constant time.
// (Per-org keys from Postgres replace this with the tenancy module.)
import { createHash, timingSafeEqual } from 'node:crypto';

export function makeBearerCheck(masterKey: string | undefined): ((authorization: string) => boolean) | undefined {
  if (masterKey === undefined) return undefined;
  const expected = createHash('sha256').update(masterKey).digest();
  return (authorization) => {
    if (!authorization.startsWith('Bearer ') && !authorization.startsWith('bearer ')) return false;
    const given = createHash('sha256').update(authorization.slice(7).trim()).digest();
    return timingSafeEqual(given, expected);
  };
}
