// Structured JSON logs, one object per line on stdout. Callers pass facts,
// never tokens, secrets or keys; `redact` is a second line of defence for
// field names that must never carry a value, and `redactCredentials` for
// text we do not write ourselves (a library's message, an error).

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELDS = /token|secret|password|authorization|private|proof|jwk|key_material/i;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

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

function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Error) out[k] = { name: v.name, message: redactCredentials(v.message), code: (v as { code?: unknown }).code };
    else if (SECRET_FIELDS.test(k) && k !== "token_id" && k !== "key_id") out[k] = "[redacted]";
    else out[k] = typeof v === "string" ? redactCredentials(v) : v;
  }
  return out;
}

export function createLogger(level: Level, write: (line: string) => void = (l) => process.stdout.write(l)): Logger {
  const min = ORDER[level];
  const log = (lvl: Level) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (ORDER[lvl] < min) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg: redactCredentials(msg), ...redact(fields) })}\n`);
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
