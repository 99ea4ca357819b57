// The NDJSON export: each user on a line with every field, personal ones decrypted, in the shape users-api import
// restores (the User object's keys, then open_banking, which the API stores but does not return).
import type { UserRow, UsersRepository } from './users.repository.js';
import { pagesOf, type ExportOptions } from './users.export.js';
import { parseJson, userRowToUser } from './users.service.js';

/** One exported user. items_connected and employers_connected are there to read; import leaves them to the accounts. */
export function ndjsonLine(row: UserRow): string {
  return `${JSON.stringify({ ...userRowToUser(row), open_banking: parseJson(row.open_banking) })}\n`;
}

/** The client's users as NDJSON, one chunk per page. */
export async function* usersNdjson(repo: UsersRepository, clientId: string, options: ExportOptions): AsyncGenerator<string> {
  for await (const rows of pagesOf(repo.pages, clientId, options)) yield rows.map(ndjsonLine).join('');
}
