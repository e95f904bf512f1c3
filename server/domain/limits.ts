// Bounds on every caller-supplied value. Each check throws
// InvalidRequestError naming the field, so hostile input is refused before
// anything is computed or stored.

import { InvalidRequestError } from "./errors.js";
import { parseScope } from "./scopes.js";

export const MAX_SCOPES = 64;
export const MAX_AUDIENCES = 16;
export const MAX_AUDIENCE_LENGTH = 256;
export const MAX_TOKEN_LENGTH = 16 * 1024;
export const MAX_REASON_LENGTH = 256;
export const MAX_HUMAN_LENGTH = 256;
export const MAX_JWK_LENGTH = 2048;

// Task and orchestration ids: what apps use as work identifiers
// (`org/visit-77`, `encounter:P-1042`, `a@b`). The agent id percent-encodes
// the task id (domain/tokens.ts), so `/` cannot add path segments there.
const TASK_ID = /^[A-Za-z0-9._:/@-]{1,128}$/;
const APP_NAME = /^[A-Za-z0-9._-]{1,128}$/;
// Audiences are resource-server names or URLs: printable, no spaces.
const AUDIENCE = /^[\x21-\x7e]{1,256}$/;
// Printable text without control characters (for reasons and principals).
const PRINTABLE = /^[^\p{Cc}\p{Cs}]*$/u;

export function requireTaskId(field: string, value: string): string {
  if (!TASK_ID.test(value)) {
    throw new InvalidRequestError(field, "must be 1 to 128 characters from A-Z a-z 0-9 . _ : / @ -");
  }
  return value;
}

export function optionalTaskId(field: string, value: string): string | null {
  return value === "" ? null : requireTaskId(field, value);
}

export function requireAppName(value: string): string {
  if (!APP_NAME.test(value)) {
    throw new InvalidRequestError("name", "must be 1 to 128 characters from A-Z a-z 0-9 . _ -");
  }
  return value;
}

export function optionalText(field: string, value: string, max: number): string | null {
  if (value === "") return null;
  if (value.length > max) throw new InvalidRequestError(field, `must be at most ${max} characters`);
  if (!PRINTABLE.test(value)) throw new InvalidRequestError(field, "must not contain control characters");
  return value;
}

/** Checks count and grammar of a scope list; returns it de-duplicated and sorted. */
export function requireScopes(field: string, scopes: readonly string[]): string[] {
  if (scopes.length === 0) throw new InvalidRequestError(field, "at least one scope is required");
  if (scopes.length > MAX_SCOPES) throw new InvalidRequestError(field, `at most ${MAX_SCOPES} scopes are allowed`);
  for (const s of scopes) parseScope(s);
  return [...new Set(scopes)].sort();
}

/** Checks count and form of an audience list; returns it de-duplicated and sorted. */
export function requireAudiences(field: string, audiences: readonly string[]): string[] {
  if (audiences.length === 0) throw new InvalidRequestError(field, "at least one audience is required");
  if (audiences.length > MAX_AUDIENCES) {
    throw new InvalidRequestError(field, `at most ${MAX_AUDIENCES} audiences are allowed`);
  }
  for (const a of audiences) {
    if (!AUDIENCE.test(a)) {
      throw new InvalidRequestError(field, `each audience must be 1 to ${MAX_AUDIENCE_LENGTH} printable characters without spaces`);
    }
  }
  return [...new Set(audiences)].sort();
}

/** The audiences of `requested` that `allowed` does not contain. */
export function excessAudiences(allowed: readonly string[], requested: readonly string[]): string[] {
  const set = new Set(allowed);
  return requested.filter((a) => !set.has(a));
}
