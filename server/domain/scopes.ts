// Scopes: `action:resource:identifier` (DESIGN §3). This file is the security
// core of the broker: every issuance and delegation goes through
// `uncoveredScopes`, and nothing may ever be granted outside a ceiling.

import { InvalidScopeError } from "./errors.js";

/** A parsed scope. Each segment is non-empty; `*` means "any value". */
export interface Scope {
  readonly action: string;
  readonly resource: string;
  readonly identifier: string;
}

export const WILDCARD = "*";
export const MAX_SCOPE_LENGTH = 256;

// Action and resource: a short identifier. The identifier may hold colons
// (it is everything after the second colon) and the usual id punctuation.
// No spaces: `scope` is space-separated in the token (RFC 9068).
const NAME = /^(?:\*|[A-Za-z][A-Za-z0-9_.-]{0,63})$/;
const IDENTIFIER = /^(?:\*|[A-Za-z0-9_.:@\/+=-]{1,200})$/;

/** Parses one scope, or throws InvalidScopeError naming it and the problem. */
export function parseScope(text: string): Scope {
  if (text.length === 0) throw new InvalidScopeError(text, "scope is empty");
  if (text.length > MAX_SCOPE_LENGTH) {
    throw new InvalidScopeError(text, `scope is longer than ${MAX_SCOPE_LENGTH} characters`);
  }
  const first = text.indexOf(":");
  const second = first < 0 ? -1 : text.indexOf(":", first + 1);
  if (first < 0 || second < 0) {
    throw new InvalidScopeError(text, "scope must have three segments: action:resource:identifier");
  }
  const action = text.slice(0, first);
  const resource = text.slice(first + 1, second);
  const identifier = text.slice(second + 1);
  if (!NAME.test(action)) {
    throw new InvalidScopeError(text, "action must be '*' or a letter then letters, digits, '_', '.', '-' (at most 64)");
  }
  if (!NAME.test(resource)) {
    throw new InvalidScopeError(text, "resource must be '*' or a letter then letters, digits, '_', '.', '-' (at most 64)");
  }
  if (!IDENTIFIER.test(identifier)) {
    throw new InvalidScopeError(text, "identifier must be '*' or letters, digits and _.:@/+=- (at most 200)");
  }
  return { action, resource, identifier };
}

/** Parses every scope; throws on the first malformed one. */
export function parseScopes(texts: readonly string[]): Scope[] {
  return texts.map(parseScope);
}

export function formatScope(s: Scope): string {
  return `${s.action}:${s.resource}:${s.identifier}`;
}

function segmentCovers(granted: string, requested: string): boolean {
  // A requested `*` is covered only by `*`: equality handles it, and
  // a concrete granted value never equals "*".
  return granted === WILDCARD || granted === requested;
}

/** True when `granted` covers `requested`: every segment is `*` or equal. */
export function covers(granted: Scope, requested: Scope): boolean {
  return (
    segmentCovers(granted.action, requested.action) &&
    segmentCovers(granted.resource, requested.resource) &&
    segmentCovers(granted.identifier, requested.identifier)
  );
}

/** True when some scope of `ceiling` covers `requested`. */
export function coveredBy(ceiling: readonly Scope[], requested: Scope): boolean {
  return ceiling.some((g) => covers(g, requested));
}

/**
 * The requested scopes (as given) that no ceiling scope covers. Empty means
 * the request is within the ceiling. Both lists must already be parsed
 * (well-formed).
 */
export function uncoveredScopes(ceiling: readonly string[], requested: readonly string[]): string[] {
  const parsedCeiling = ceiling.map(parseScope);
  return requested.filter((r) => !coveredBy(parsedCeiling, parseScope(r)));
}

/** Sorted, de-duplicated copy: the canonical form stored and signed. */
export function normalizeScopes(scopes: readonly string[]): string[] {
  return [...new Set(scopes)].sort();
}
