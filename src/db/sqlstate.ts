// The Postgres error codes (SQLSTATE) the code reacts to, by name, in one place: a grep for a
// condition finds every handler. Codes: https://www.postgresql.org/docs/current/errcodes-appendix.html

export const UNIQUE_VIOLATION = '23505';
export const FOREIGN_KEY_VIOLATION = '23503';
/** Also raised for a row no partition accepts ("no partition of relation ... found for row"). */
export const CHECK_VIOLATION = '23514';
export const DUPLICATE_OBJECT = '42710';
export const INSUFFICIENT_PRIVILEGE = '42501';
export const UNDEFINED_TABLE = '42P01';
export const DEADLOCK_DETECTED = '40P01';
export const LOCK_NOT_AVAILABLE = '55P03';

/** Class 08, connection exceptions: the server is out of reach, not the statement wrong. */
export const CONNECTION_EXCEPTION_CLASS = '08';
/** Class 22, data exceptions (bad encoding, NUL in text, out-of-range values): the input's fault. */
export const DATA_EXCEPTION_CLASS = '22';
/** 57P01..57P05: the server is shutting down, starting up, or dropped the session. */
export const SERVER_SHUTDOWN_PREFIX = '57P';
