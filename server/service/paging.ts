// Keyset paging shared by the operator list calls: a page token is the last
// id of the previous page, base64url encoded.

import { InvalidRequestError } from "../domain/errors.js";

/** Page size (0: 50, at most 500) and the id to list after, from a request. */
export function pageRequest(pageSize: number, pageToken: string, id: RegExp): { size: number; after: string } {
  const size = pageSize === 0 ? 50 : pageSize;
  if (size > 500) throw new InvalidRequestError("page_size", "must be at most 500");
  let after = "";
  if (pageToken !== "") {
    after = Buffer.from(pageToken, "base64url").toString("utf8");
    if (!id.test(after)) throw new InvalidRequestError("page_token", "is not a token from a previous page");
  }
  return { size, after };
}

/** The page (at most size of rows, fetched as size + 1) and the token of the next one ("" when none). */
export function pageOf<T>(rows: T[], size: number, idOf: (row: T) => string): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, size);
  const nextPageToken = rows.length > size ? Buffer.from(idOf(page.at(-1)!), "utf8").toString("base64url") : "";
  return { page, nextPageToken };
}
