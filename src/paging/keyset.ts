// Keyset paging over a client's rows in id (= creation) order: the walk, its cursors and its SQL, for every list.
import type { Compilable, Kysely } from 'kysely';
import type { Database, Db } from '../db/database.js';
import { prepare, type PreparedQuery } from '../db/prepared.js';
import type { CursorCodec, CursorState, Filters } from './cursor.js';

export const DEFAULT_PAGE_SIZE = 10;
export const MAX_PAGE_SIZE = 200;

export interface PagePosition {
  clientId: string;
  filters: Filters;
  /** 'next' walks ids upwards from key, 'previous' downwards; no key means from the start. */
  direction: 'next' | 'previous';
  key: string | undefined;
  inclusive: boolean;
}

/** Where a list's rows come from: a page from a position, and whether anything lies beyond one. */
export interface KeysetSource<R extends { id: string }> {
  page(position: PagePosition, limit: number): Promise<R[]>;
  hasBeyond(position: PagePosition): Promise<boolean>;
}

export interface PageRequest {
  limit?: number | undefined;
  cursor?: string | undefined;
  /** The filters given (undefined ones are left out). */
  filters: Record<string, string | undefined>;
}

export interface Page<R> {
  next: string | null;
  previous: string | null;
  rows: R[];
}

type From = Omit<CursorState, 'limit' | 'filters'>;

/**
 * One page of `list` for `clientId`: from the start (with the request's limit and filters) or from a cursor
 * (which carries them). `link(cursor)` makes the URL of a neighbouring page. A walk returns every row that
 * exists throughout it exactly once, whatever is created or deleted meanwhile.
 */
export async function walkPage<R extends { id: string }>(
  source: KeysetSource<R>,
  cursors: CursorCodec,
  clientId: string,
  list: string,
  request: PageRequest,
  link: (cursor: string) => string,
): Promise<Page<R>> {
  const given = Object.fromEntries(Object.entries(request.filters).filter(([, v]) => v !== undefined)) as Filters;
  const state: Omit<CursorState, 'key'> & { key: string | undefined } =
    request.cursor !== undefined
      ? cursors.decode(clientId, list, request.cursor)
      : {
          direction: 'next',
          key: undefined,
          inclusive: false,
          limit: Math.min(request.limit ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
          filters: given,
        };
  const rows = await source.page({ clientId, ...state }, state.limit + 1);
  const more = rows.length > state.limit;
  const page = rows.slice(0, state.limit);
  if (state.direction === 'previous') page.reverse();

  const forward = state.direction === 'next';
  const first = page[0]?.id;
  const last = page.at(-1)?.id;
  // Past the end of the walk (empty page): both neighbours hinge on the cursor's own key.
  const nextFrom: From | undefined =
    last !== undefined
      ? { direction: 'next', key: last, inclusive: false }
      : state.key !== undefined
        ? { direction: 'next', key: state.key, inclusive: !forward && !state.inclusive }
        : undefined;
  const previousFrom: From | undefined =
    first !== undefined
      ? { direction: 'previous', key: first, inclusive: false }
      : state.key !== undefined
        ? { direction: 'previous', key: state.key, inclusive: forward && !state.inclusive }
        : undefined;

  const exists = async (from: From | undefined) =>
    from !== undefined && (await source.hasBeyond({ clientId, filters: state.filters, ...from }));
  const hasNext = forward && page.length > 0 ? more : await exists(nextFrom);
  const hasPrevious = !forward && page.length > 0 ? more : state.key === undefined ? false : await exists(previousFrom);

  const linkFrom = (from: From | undefined) =>
    link(cursors.encode(clientId, list, { ...from!, limit: state.limit, filters: state.filters }));
  return { next: hasNext ? linkFrom(nextFrom) : null, previous: hasPrevious ? linkFrom(previousFrom) : null, rows: page };
}

type PageArgs = { clientId: string; key: string; limit: number } & Record<string, string | number>;

/**
 * The SQL of a keyset source over `table` (keyed by client_id, id): one prepared query per shape of position
 * (direction, bound, which filters), made on first use. `filterColumns` maps each filter to its column.
 */
export class KeysetQueries<T extends keyof Database> {
  private readonly queries = new Map<string, PreparedQuery<PageArgs, Database[T]>>();

  constructor(
    private readonly db: Db,
    private readonly table: T,
    private readonly filterColumns: Readonly<Record<string, string>>,
  ) {}

  private query(position: PagePosition, columns: 'all' | 'id'): PreparedQuery<PageArgs, Database[T]> {
    const op =
      position.key === undefined
        ? undefined
        : position.direction === 'next'
          ? position.inclusive
            ? '>='
            : '>'
          : position.inclusive
            ? '<='
            : '<';
    const filters = Object.keys(this.filterColumns).filter((name) => position.filters[name] !== undefined);
    const shape = `${columns} ${position.direction} ${op ?? 'start'} ${filters.join(',')}`;
    let query = this.queries.get(shape);
    if (query === undefined) {
      // The table and columns vary per list; the shape of the query does not.
      const db = this.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      query = prepare(this.db, (p: PageArgs) => {
        let q = db.selectFrom(this.table as string).where('client_id', '=', p.clientId);
        for (const name of filters) q = q.where(this.filterColumns[name]!, '=', p[`filter_${name}`]);
        if (op !== undefined) q = q.where('id', op, p.key);
        q = q.orderBy('id', position.direction === 'next' ? 'asc' : 'desc').limit(p.limit);
        return (columns === 'all' ? q.selectAll() : q.select('id')) as unknown as Compilable<Database[T]>;
      });
      this.queries.set(shape, query);
    }
    return query;
  }

  private static args(position: PagePosition, limit: number): PageArgs {
    const args: PageArgs = { clientId: position.clientId, key: position.key ?? '', limit };
    for (const [name, value] of Object.entries(position.filters)) args[`filter_${name}`] = value;
    return args;
  }

  /** Up to `limit` rows from `position`, in walk order (descending for 'previous'). */
  page(position: PagePosition, limit: number): Promise<Array<Database[T]>> {
    return this.query(position, 'all').all(KeysetQueries.args(position, limit));
  }

  async hasBeyond(position: PagePosition): Promise<boolean> {
    return (await this.query(position, 'id').first(KeysetQueries.args(position, 1))) !== undefined;
  }
}
