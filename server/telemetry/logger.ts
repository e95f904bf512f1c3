// Structured JSON logs with pino, one object per line on stdout. Callers pass
// facts, never tokens, secrets or keys. Three lines of defence behind that:
// fields whose name says "credential" lose their value, credentials inside
// free text (a library's message, an error) are replaced by a marker, and
// pino's `redact` paths catch the same names one level down.

import pino from "pino";

export type Level = "debug" | "info" | "warn" | "error";
type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger whose lines all carry `bindings` (a request id, a method). */
  child(bindings: Fields): Logger;
}

const SECRET_FIELDS = /token|secret|password|authorization|private|proof|jwk|key_material/i;
// Ids, not credentials, though their names match SECRET_FIELDS.
const NOT_SECRET = new Set(["token_id", "key_id", "parent_token_id"]);
const NESTED_SECRETS = ["token", "access_token", "client_secret", "secret", "password", "authorization", "proof", "private_key", "jwk"];
// An error's cause chain is followed this deep: a cycle must not loop.
const MAX_CAUSES = 5;

// Credentials inside free text. After an authorization scheme or a
// credential header's name, everything to the end of the text goes: a
// hostile value may hold spaces or any character.
const CREDENTIAL_TEXT: readonly [RegExp, string][] = [
  [/\b(authorization|baton-proof)\b(["']?\s*[:=]\s*)[\s\S]*/gi, "$1$2[redacted]"],
  [/\b(bearer|basic)\s[\s\S]*/gi, "$1 [redacted]"],
  [/\b(bop|bsec)_[A-Za-z0-9_-]+/g, "$1_[redacted]"],
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*/g, "[redacted JWT]"],
];

/** `text` with anything that looks like a credential replaced by a marker. */
export function redactCredentials(text: string): string {
  let out = text;
  for (const [pattern, marker] of CREDENTIAL_TEXT) out = out.replace(pattern, marker);
  return out;
}

/** An error as loggable facts: type, message, code, stack and its causes, all redacted. */
function serializeError(e: Error, depth = 0): Fields {
  const out: Fields = { type: e.name, message: redactCredentials(e.message) };
  const code = (e as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (e.stack) out.stack = redactCredentials(e.stack);
  const cause = (e as { cause?: unknown }).cause;
  if (cause !== undefined && depth < MAX_CAUSES) {
    out.cause = cause instanceof Error ? serializeError(cause, depth + 1) : redactCredentials(String(cause));
  }
  return out;
}

function redact(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Error) out[k] = serializeError(v);
    else if (SECRET_FIELDS.test(k) && !NOT_SECRET.has(k)) out[k] = "[redacted]";
    else out[k] = typeof v === "string" ? redactCredentials(v) : v;
  }
  return out;
}

function wrap(p: pino.Logger): Logger {
  const at = (lvl: Level) => (msg: string, fields: Fields = {}) => {
    // The message as the first field rather than pino's message argument, which
    // would put it last: readers (and scripts) find a line by its "msg".
    if (p.isLevelEnabled(lvl)) p[lvl]({ msg: redactCredentials(msg), ...redact(fields) });
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (b) => lazyChild(p, b) };
}

/**
 * A child made only when it first writes a line: every call has one (its
 * request id), and most calls write nothing at the levels run in production.
 */
function lazyChild(p: pino.Logger, bindings: Fields): Logger {
  let made: Logger | null = null;
  const child = (): Logger => (made ??= wrap(p.child(redact(bindings))));
  const at = (lvl: Level) => (msg: string, fields?: Fields) => {
    if (p.isLevelEnabled(lvl)) child()[lvl](msg, fields);
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (b) => child().child(b) };
}

/** JSON lines at `level` and above, to stdout or to `write` (tests capture lines this way). */
export function createLogger(level: Level, write?: (line: string) => void): Logger {
  // Synchronous writes: the last lines before an exit are the ones that matter.
  const dest = write ? { write } : pino.destination({ dest: 1, sync: true });
  return wrap(
    pino(
      {
        level,
        base: { pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        redact: { paths: NESTED_SECRETS.map((n) => `*.${n}`), censor: "[redacted]" },
      },
      dest,
    ),
  );
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silentLogger };
