// Exports of a client's users, read a keyset page at a time and never held whole: CSV, with nothing personal in it,
// for spreadsheets and billing.
import type { SortOrder } from '../paging/cursor.js';
import { walkAll, type KeysetSource } from '../paging/keyset.js';
import type { UserSummaryRow, UsersRepository } from './users.repository.js';

/** Users read per query: few queries, and a page of CSV stays a few hundred KB. */
export const EXPORT_PAGE_SIZE = 1000;

export interface ExportOptions {
  /** Only the users with this external_id (exact), as the list's filter. */
  externalId?: string | undefined;
  order: SortOrder;
  pageSize?: number;
}

export const CSV_COLUMNS = ['id', 'created_at', 'external_id', 'items_connected', 'employers_connected'] as const;

const CRLF = '\r\n';
/**
 * A spreadsheet runs a cell that starts with = + - @ (or a tab or CR before them) as a formula (OWASP, CSV
 * injection), and external_id, items and employers come from outside. Such a cell gets a leading ', as OWASP
 * recommends; so does one that already starts with ', so that removing one leading ' always gives the value back.
 */
const FORMULA_START = /^[=+\-@\t\r']/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field (RFC 4180): formula-guarded, then quoted if it holds a comma, a quote, CR or LF, quotes doubled. */
export function csvField(value: string | null): string {
  if (value === null) return '';
  const guarded = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(guarded) ? `"${guarded.replaceAll('"', '""')}"` : guarded;
}

const joined = (json: string) => (JSON.parse(json) as string[]).join(';');

function csvRow(row: UserSummaryRow): string {
  return [row.id, row.created_at, row.external_id, joined(row.items_connected), joined(row.employers_connected)].map(csvField).join(',') + CRLF;
}

/** The CSV of a client's users, header first, one chunk per page (the header rides with the first page). */
export async function* usersCsv(repo: UsersRepository, clientId: string, options: ExportOptions): AsyncGenerator<string> {
  let header = CSV_COLUMNS.join(',') + CRLF;
  for await (const rows of pagesOf(repo.summaryPages, clientId, options)) {
    yield header + rows.map(csvRow).join('');
    header = '';
  }
  if (header !== '') yield header;
}

/** The pages of an export's walk. */
export function pagesOf<R extends { id: string }>(source: KeysetSource<R>, clientId: string, options: ExportOptions): AsyncGenerator<R[]> {
  return walkAll(source, clientId, {
    filters: { external_id: options.externalId },
    order: options.order,
    pageSize: options.pageSize ?? EXPORT_PAGE_SIZE,
  });
}
