// Argument checks for the public API. TypeScript's types vanish at run time,
// and JavaScript callers (or an `any`) can pass a string where a list is
// expected: spread, "read:records:P-1" becomes a list of characters and the
// broker answers with a confusing INVALID_SCOPE "r". These checks fail first,
// with a TypeError that names the argument and the type it got. They never
// quote the value, which may be a token or a secret.

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

/** A copy of a list of strings; anything else (a string above all) is a TypeError naming `name`. */
export function stringList(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of strings, not ${typeName(value)}`);
  return value.map((v: unknown, i) => {
    if (typeof v !== "string") throw new TypeError(`${name}[${i}] must be a string, not ${typeName(v)}`);
    return v;
  });
}

/** {@link stringList}, with undefined as the empty list. */
export function optionalStringList(value: unknown, name: string): string[] {
  return value === undefined ? [] : stringList(value, name);
}

/** A string; anything else is a TypeError naming `name`. */
export function requiredString(value: unknown, name: string): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string, not ${typeName(value)}`);
  return value;
}

/** {@link requiredString}, with undefined as the empty string (proto3's "unset"). */
export function optionalString(value: unknown, name: string): string {
  return value === undefined ? "" : requiredString(value, name);
}

/** A finite number, or undefined; anything else is a TypeError naming `name`. */
export function optionalNumber(value: unknown, name: string): number | undefined {
  if (value === undefined || (typeof value === "number" && Number.isFinite(value))) return value;
  throw new TypeError(`${name} must be a finite number, not ${typeof value === "number" ? String(value) : typeName(value)}`);
}

/** A boolean, with undefined as false; anything else is a TypeError naming `name`. */
export function optionalBoolean(value: unknown, name: string): boolean {
  if (value === undefined || typeof value === "boolean") return value === true;
  throw new TypeError(`${name} must be a boolean, not ${typeName(value)}`);
}

/** An object (a request or options argument); anything else is a TypeError naming `name`. */
export function requiredObject(value: unknown, name: string): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new TypeError(`${name} must be an object, not ${typeName(value)}`);
}
