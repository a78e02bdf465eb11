// Static checks on migrations/NNNN_name.sql before anything reaches the database: no data loss
// unless a reviewer signed the file, nothing in schema public, every object named nemo.<x>, and
// every statement safe to meet an object that already exists. One exception to "nothing in public":
// a file marked `-- nemo:reads-litellm` may read LiteLLM's tables (public."LiteLLM_...") inside
// function bodies, and only read them: the functions that authenticate LiteLLM keys. SQL is read only as far as these
// checks need: comments and string literals are blanked, dollar-quoted bodies are kept and linted
// too (DO blocks and function bodies can hide DDL). Dynamic SQL (EXECUTE of a string) is not seen.

export const MIGRATION_FILE_NAME = /^\d{4}_[a-z0-9_]+\.sql$/;
const REVIEWED_MARKER = /^--\s*nemo:destructive-reviewed-by=(.*)$/;
const READS_LITELLM_MARKER = /^--\s*nemo:reads-litellm\s*$/;

/** Where a chunk of SQL sits: a top-level statement, a DO block's body, or a function's body. */
type Where = 'top' | 'do' | 'body';
interface Chunk {
  readonly text: string;
  readonly line: number;
  readonly where: Where;
}

export function lintMigration(fileName: string, sql: string): string[] {
  const problems: string[] = [];
  const report = (line: number, what: string) => problems.push(`${fileName}:${line}: ${what}`);
  if (!MIGRATION_FILE_NAME.test(fileName)) report(1, 'file name must match NNNN_lower_snake.sql');
  const reviewer = reviewedBy(sql);
  if (reviewer === '') report(1, 'nemo:destructive-reviewed-by= needs a reviewer name');
  const readsLiteLLM = headerLines(sql).some((line) => READS_LITELLM_MARKER.test(line));
  for (const chunk of chunksOf(sql)) {
    const say = (what: string) => report(chunk.line, what);
    if (!reviewer) destructiveChecks(chunk.text, say);
    schemaChecks(chunk, say, readsLiteLLM);
  }
  return problems;
}

/** The comment lines that open a file, before its first statement. */
function headerLines(sql: string): string[] {
  const lines: string[] = [];
  for (const raw of sql.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (!line.startsWith('--')) break;
    lines.push(line);
  }
  return lines;
}

/** The reviewer named in the header comment, '' for a marker without a name, null for none. */
function reviewedBy(sql: string): string | null {
  for (const line of headerLines(sql)) {
    const marker = REVIEWED_MARKER.exec(line);
    if (marker) return (marker[1] ?? '').trim();
  }
  return null;
}

// ---- Patterns -------------------------------------------------------------------------------

const ID = String.raw`(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)`;
const NAME = String.raw`${ID}(?:\s*\.\s*${ID})*`;
const NEMO_QUALIFIED = new RegExp(String.raw`^(?:nemo|"nemo")\s*\.\s*${ID}$`, 'i');
const NEMO = /^(?:nemo|"nemo")$/i;

/** Readable patterns: a space means \s+, {id} an identifier, {name} a possibly qualified one. */
function rx(strings: TemplateStringsArray): RegExp {
  const source = strings.raw.join('').replaceAll(' ', String.raw`\s+`);
  return new RegExp(source.replaceAll('{id}', ID).replaceAll('{name}', NAME), 'gi');
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
const isNemoName = (name: string) => NEMO_QUALIFIED.test(name);
const listOf = (text: string) => text.split(',').map((item) => item.trim());

// ---- Destructive forms (skipped for a reviewed file) ----------------------------------------

const DESTRUCTIVE: readonly [RegExp, string][] = [
  [rx`\bdrop (not null|materialized view|\w+)`, 'is refused: forward-only migrations never drop'],
  // TRUNCATE as a privilege or a trigger event is not the command.
  [rx`(?<!(?:\b(?:grant|revoke|before|after|or)|,)\s*)\btruncate\b`, 'is refused (data loss)'],
  [rx`\bdelete from\b`, 'is refused (data loss)'],
  [rx`\balter (?:column )?{id} (?:set data )?type\b`, 'is refused: changing a column type rewrites or breaks data'],
  [rx`\brename\b`, 'is refused: code still running uses the old name'],
];

function destructiveChecks(text: string, say: (what: string) => void): void {
  for (const [pattern, why] of DESTRUCTIVE) {
    for (const m of text.matchAll(pattern)) {
      say(`${oneLine(m[0]).toUpperCase()} ${why} (a reviewed file may: -- nemo:destructive-reviewed-by=<name>)`);
    }
  }
}

// ---- Schema nemo only, qualified names, idempotent DDL --------------------------------------

const CREATE_OBJECT = rx`\bcreate (or replace )?(?:(?:global|local) )?(?:(?:temp|temporary|unlogged) )?(?:recursive )?(table|sequence|materialized view|view|type|domain|function|procedure) (if not exists )?({name})`;
const CREATE_INDEX = rx`\bcreate (?:unique )?index (concurrently )?(if not exists )?(?:{id} )?on (?:only )?({name})`;
const CREATE_POLICY = rx`\bcreate policy {id} on ({name})`;
const CREATE_TRIGGER = rx`\bcreate (or replace )?(constraint )?trigger {id}\b[\s\S]*?\bon ({name})`;
const CREATE_SCHEMA = rx`\bcreate schema\b([^;]*)`;
const CREATE_EXTENSION = rx`\bcreate extension (if not exists )?{id}([^;]*)`;
// Privileges named CREATE (GRANT CREATE ON ...) are not the command.
const CREATE_ANY = rx`(?<!(?:\b(?:grant|revoke)|,)\s*)\bcreate (?:or replace )?(\w+)`;
const CREATE_KINDS = new Set(['global', 'local', 'temp', 'temporary', 'unlogged', 'recursive', 'table', 'sequence', 'materialized', 'view', 'type', 'domain', 'function', 'procedure', 'index', 'unique', 'policy', 'constraint', 'trigger', 'schema', 'extension']);
const ALTER_OBJECT = rx`\balter (table|index|function|procedure|routine|view|materialized view|sequence|type|domain|aggregate) (?:if exists )?(?:only )?({name})`;
const ALTER_ON = rx`\balter (policy|trigger) {id} on ({name})`;
const ALTER_SCHEMA = rx`\balter schema ({id})`;
const ALTER_DEFAULT_PRIVILEGES = rx`\balter default privileges\b`;
// Statement-level ALTER only: ALTER TABLE has ALTER [COLUMN] sub-clauses. The statement start is
// checked on the text before each match (statementAlter): as a lookbehind tried at every position
// of every file, it cost about 0.7 s of every start.
const ALTER_ANY = rx`\balter (\w+)`;
const AFTER_BLOCK_KEYWORD = /\b(?:begin|then|else|loop)\s+$/i;

/** The ALTERs that begin a statement (or a plpgsql one after BEGIN/THEN/ELSE/LOOP). */
function* statementAlters(text: string): Generator<string> {
  for (const m of text.matchAll(ALTER_ANY)) {
    const before = text.slice(0, m.index);
    if (/^\s*$/.test(before) || AFTER_BLOCK_KEYWORD.test(before.slice(-64))) yield m[1]!;
  }
}
const ALTER_KINDS = new Set(['table', 'index', 'function', 'procedure', 'routine', 'view', 'materialized', 'sequence', 'type', 'domain', 'aggregate', 'policy', 'trigger', 'schema', 'default', 'extension', 'column', 'constraint']);
const ADD_COLUMN = rx`\badd column (if not exists )?`;
const ADD_WITHOUT_COLUMN = rx`\badd (?!(?:column|constraint|primary|unique|check|foreign|exclude|value|attribute|if)\b)({id})`;
const GRANT = rx`(?<!\b(?:with|revoke)\s*)\b(grant|revoke)\b([^;]*)`;
const PUBLIC_REF = rx`(?:\bpublic|"public")\s*\.`;
const SEARCH_PATH_PUBLIC = rx`\bsearch_path\s*(?:=|\bto\b)[\s\w",$]*?\bpublic\b`;
const SET_SCHEMA = rx`\bset schema ({id})`;
const LITELLM_TABLE = /^\s*"LiteLLM_[A-Za-z]+"/;
// What may not come right before a LiteLLM table: anything that writes, locks or ties to it.
const WRITES_BEFORE = /\b(?:insert\s+into|update|delete\s+from|truncate(?:\s+table)?|copy|lock(?:\s+table)?|alter\s+table(?:\s+if\s+exists)?|drop\s+table(?:\s+if\s+exists)?|references|into|on)\s+(?:only\s+)?$/i;

/** A reference to one of LiteLLM's tables that only reads it (FROM, JOIN, EXISTS ...). */
function isLiteLLMRead(text: string, afterSchema: number, before: string): boolean {
  if (!LITELLM_TABLE.test(text.slice(afterSchema, afterSchema + 64))) return false;
  if (WRITES_BEFORE.test(before.slice(-64))) return false;
  // A locking read would make LiteLLM's own writes wait on ours.
  return !/\bfor\s+(?:no\s+key\s+)?(?:update|share|key\s+share)\b/i.test(text);
}
const TX_CONTROL = /^\s*(commit|rollback|abort|start\s+transaction|savepoint|release|prepare\s+transaction|begin(?=\s*$|\s+(?:transaction|work|isolation|read|not))|end(?=\s+(?:transaction|work)))\b/i;

function schemaChecks(chunk: Chunk, say: (what: string) => void, readsLiteLLM: boolean): void {
  const { text, where } = chunk;
  for (const m of text.matchAll(PUBLIC_REF)) {
    if (readsLiteLLM && where === 'body' && isLiteLLMRead(text, m.index + m[0].length, text.slice(0, m.index))) continue;
    say(`${oneLine(m[0])} refers to schema public; the project only touches schema nemo`);
  }
  if (text.search(SEARCH_PATH_PUBLIC) >= 0) say('search_path names schema public; use nemo, pg_catalog');
  for (const m of text.matchAll(SET_SCHEMA)) if (!NEMO.test(m[1]!)) say(`SET SCHEMA ${m[1]} moves an object out of schema nemo`);

  for (const m of text.matchAll(CREATE_OBJECT)) {
    const [, orReplace, rawKind, ifNotExists, name] = m;
    const kind = oneLine(rawKind!).toUpperCase();
    if (!isNemoName(name!)) say(`CREATE ${kind} ${name}: the name must be schema-qualified as nemo.<name>`);
    if (['TABLE', 'SEQUENCE', 'MATERIALIZED VIEW'].includes(kind) && !ifNotExists) say(`CREATE ${kind} must be CREATE ${kind} IF NOT EXISTS`);
    if (['VIEW', 'FUNCTION', 'PROCEDURE'].includes(kind) && !orReplace) say(`CREATE ${kind} must be CREATE OR REPLACE ${kind}`);
    if (['TYPE', 'DOMAIN'].includes(kind) && where !== 'do') say(`CREATE ${kind} has no IF NOT EXISTS: put it in a DO block that checks pg_type first`);
  }
  for (const m of text.matchAll(CREATE_INDEX)) {
    if (!isNemoName(m[3]!)) say(`CREATE INDEX ON ${m[3]}: the table must be schema-qualified as nemo.<table>`);
    if (!m[2]) say('CREATE INDEX must be CREATE INDEX IF NOT EXISTS <name>');
    if (m[1]) say('CREATE INDEX CONCURRENTLY cannot run inside the migration transaction');
  }
  for (const m of text.matchAll(CREATE_POLICY)) {
    if (!isNemoName(m[1]!)) say(`CREATE POLICY ON ${m[1]}: the table must be schema-qualified as nemo.<table>`);
    if (where !== 'do') say('CREATE POLICY has no IF NOT EXISTS: put it in a DO block that checks pg_policies first');
  }
  for (const m of text.matchAll(CREATE_TRIGGER)) {
    if (!isNemoName(m[3]!)) say(`CREATE TRIGGER ON ${m[3]}: the table must be schema-qualified as nemo.<table>`);
    if (where !== 'do' && (!m[1] || m[2])) say('CREATE TRIGGER must be CREATE OR REPLACE TRIGGER or sit in a DO block that checks pg_trigger first');
  }
  for (const m of text.matchAll(CREATE_SCHEMA)) {
    if (!/^\s+if\s+not\s+exists\s+(?:nemo|"nemo")\s*$/i.test(m[1]!)) say('CREATE SCHEMA is allowed only as CREATE SCHEMA IF NOT EXISTS nemo');
  }
  for (const m of text.matchAll(CREATE_EXTENSION)) {
    if (!/\bschema\s+(?:nemo|"nemo")\s*(?:$|\b)/i.test(m[2]!)) say('CREATE EXTENSION must say SCHEMA nemo');
    if (!m[1]) say('CREATE EXTENSION must be CREATE EXTENSION IF NOT EXISTS');
  }
  for (const m of text.matchAll(CREATE_ANY)) {
    // Fail closed: an object kind this lint does not know is one it cannot vouch for.
    if (!CREATE_KINDS.has(m[1]!.toLowerCase())) say(`CREATE ${m[1]!.toUpperCase()} is not an object kind migrations may create`);
  }

  for (const m of text.matchAll(ALTER_OBJECT)) {
    if (!isNemoName(m[2]!)) say(`ALTER ${oneLine(m[1]!).toUpperCase()} ${m[2]}: the target must be schema-qualified as nemo.<name>`);
  }
  for (const m of text.matchAll(ALTER_ON)) {
    if (!isNemoName(m[2]!)) say(`ALTER ${m[1]!.toUpperCase()} ON ${m[2]}: the table must be schema-qualified as nemo.<table>`);
  }
  for (const m of text.matchAll(ALTER_SCHEMA)) if (!NEMO.test(m[1]!)) say(`ALTER SCHEMA ${m[1]}: only schema nemo is ours`);
  for (const kind of statementAlters(text)) {
    if (!ALTER_KINDS.has(kind.toLowerCase())) say(`ALTER ${kind.toUpperCase()} reaches outside schema nemo`);
  }
  const defaultPrivileges = text.search(ALTER_DEFAULT_PRIVILEGES) >= 0;
  if (defaultPrivileges) {
    const inSchema = /\bin\s+schema\s+([\s\S]*?)\s+(?:grant|revoke)\b/i.exec(text);
    if (!inSchema || !listOf(inSchema[1]!).every((s) => NEMO.test(s))) say('ALTER DEFAULT PRIVILEGES must say IN SCHEMA nemo');
  }

  if (/\balter\s+table\b/i.test(text)) {
    for (const m of text.matchAll(ADD_COLUMN)) if (!m[1]) say('ADD COLUMN must be ADD COLUMN IF NOT EXISTS');
    for (const m of text.matchAll(ADD_WITHOUT_COLUMN)) say(`ADD ${m[1]} must be ADD COLUMN IF NOT EXISTS ${m[1]}`);
  }
  if (!defaultPrivileges) for (const m of text.matchAll(GRANT)) grantCheck(m[1]!.toUpperCase(), m[2]!, say);

  if (where === 'top') {
    const tx = TX_CONTROL.exec(text);
    if (tx) say(`${oneLine(tx[1]!).toUpperCase()}: the runner wraps each file in its own transaction`);
    // Migrations run as a superuser: a definer function resolving names through the caller's
    // search_path is a privilege escalation.
    if (/\bsecurity\s+definer\b/i.test(text) && !/\bset\s+search_path\b/i.test(text)) {
      say('SECURITY DEFINER needs SET search_path = nemo, pg_catalog');
    }
  }
}

/** GRANT/REVOKE only on objects in schema nemo; never role membership. */
function grantCheck(verb: string, rest: string, say: (what: string) => void): void {
  let flat = rest;
  // Column lists and function signatures carry commas that are not object separators.
  while (/\([^()]*\)/.test(flat)) flat = flat.replace(/\([^()]*\)/g, ' ');
  const on = /\bon\s+([\s\S]*?)\s+(?:to|from)\b/i.exec(flat);
  if (!on) return say(`${verb} without ON grants role membership; only privileges on objects in schema nemo`);
  const target = oneLine(on[1]!);
  const schema = /^(?:all\s+(?:tables|sequences|functions|procedures|routines)\s+in\s+)?schema\s+(.+)$/i.exec(target);
  const objects = /^(?:(?:table|sequence|function|procedure|routine|type|domain)\s+)?(.+)$/i.exec(target);
  const ok = schema ? listOf(schema[1]!).every((s) => NEMO.test(s)) : listOf(objects![1]!).every(isNemoName);
  if (!ok) say(`${verb} ON ${target}: only objects in schema nemo`);
}

// ---- Reading SQL ----------------------------------------------------------------------------

/** Statements split on `;`, top level and inside each dollar-quoted body, with their first line. */
function chunksOf(sql: string): Chunk[] {
  const { clean, bodies } = scan(sql);
  const top = clean.split('');
  for (const body of bodies) for (let k = body.start; k < body.end; k++) if (top[k] !== '\n') top[k] = ' ';
  const chunks: Chunk[] = [];
  const split = (text: string, from: number, to: number, where: Where) => {
    let start = from;
    for (let k = from; k <= to; k++) {
      if (k < to && text[k] !== ';') continue;
      const piece = text.slice(start, k);
      const first = piece.search(/\S/);
      if (first >= 0) chunks.push({ text: piece, line: lineAt(sql, start + first), where });
      start = k + 1;
    }
  };
  split(top.join(''), 0, sql.length, 'top');
  for (const body of bodies) split(clean, body.start, body.end, body.where);
  return chunks;
}

function lineAt(sql: string, offset: number): number {
  let line = 1;
  for (let k = 0; k < offset; k++) if (sql.charCodeAt(k) === 10) line++;
  return line;
}

const DOLLAR_TAG = /\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/y;
const isIdentChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$]/.test(c);

/**
 * Comments, string literals and dollar-quote delimiters become spaces (newlines kept, so offsets
 * and line numbers still match the file); quoted identifiers and dollar-quoted bodies stay.
 */
function scan(sql: string): { clean: string; bodies: { start: number; end: number; where: Where }[] } {
  const out = sql.split('');
  const bodies: { start: number; end: number; where: Where }[] = [];
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  const walk = (from: number, to: number, inside: Where | null): void => {
    let statementStart = from;
    let i = from;
    while (i < to) {
      const c = sql[i];
      const next = sql[i + 1];
      DOLLAR_TAG.lastIndex = i;
      const tag = c === '$' && !isIdentChar(sql[i - 1]) ? DOLLAR_TAG.exec(sql) : null;
      if (c === ';') {
        statementStart = i + 1;
        i++;
      } else if (c === '-' && next === '-') {
        const end = sql.indexOf('\n', i);
        const stop = end < 0 || end > to ? to : end;
        blank(i, stop);
        i = stop;
      } else if (c === '/' && next === '*') {
        const stop = endOfBlockComment(sql, i, to);
        blank(i, stop);
        i = stop;
      } else if (c === "'") {
        // E'...' strings take backslash escapes; standard strings do not.
        const escapes = /[eE]/.test(sql[i - 1] ?? '') && !isIdentChar(sql[i - 2]);
        const stop = endOfQuoted(sql, i, to, "'", escapes);
        blank(i, stop);
        i = stop;
      } else if (c === '"') {
        i = endOfQuoted(sql, i, to, '"', false);
      } else if (tag) {
        const delimiter = tag[0];
        const open = i + delimiter.length;
        const found = sql.indexOf(delimiter, open);
        const close = found < 0 || found + delimiter.length > to ? to : found;
        const where = inside ?? (/^\s*do\b/i.test(out.slice(statementStart, i).join('')) ? 'do' : 'body');
        if (inside === null) bodies.push({ start: open, end: close, where });
        blank(i, open);
        walk(open, close, where);
        const after = Math.min(close + delimiter.length, to);
        blank(close, after);
        i = after;
      } else {
        i++;
      }
    }
  };
  walk(0, sql.length, null);
  return { clean: out.join(''), bodies };
}

function endOfQuoted(sql: string, start: number, to: number, quote: string, backslashEscapes: boolean): number {
  for (let k = start + 1; k < to; k++) {
    if (backslashEscapes && sql[k] === '\\') k++;
    else if (sql[k] === quote) {
      if (sql[k + 1] !== quote) return k + 1;
      k++; // a doubled quote is an escaped quote
    }
  }
  return to;
}

/** Postgres block comments nest. */
function endOfBlockComment(sql: string, start: number, to: number): number {
  let depth = 0;
  for (let k = start; k < to; k++) {
    if (sql[k] === '/' && sql[k + 1] === '*') {
      depth++;
      k++;
    } else if (sql[k] === '*' && sql[k + 1] === '/') {
      depth--;
      k++;
      if (depth === 0) return Math.min(k + 1, to);
    }
  }
  return to;
}
