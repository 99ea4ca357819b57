// Keyset paging over a client's rows in key (= creation) order, either way: the walk, its cursors and its SQL, for every list.
import type { Compilable, Kysely } from 'kysely';
import type { Database, Db } from '../db/database.js';
import { prepare, type PreparedQuery } from '../db/prepared.js';
import type { CursorCodec, CursorState, Filters, SortOrder } from './cursor.js';

export const DEFAULT_PAGE_SIZE = 10;
export const MAX_PAGE_SIZE = 200;

/** The `ordering` values of every list, in DRF's OrderingFilter style: the first is the default. */
export const ORDERINGS = ['created_at', '-created_at'] as const;
export type Ordering = (typeof ORDERINGS)[number];

/** Ids are time ordered, so ordering by created_at is ordering by the key. */
export const sortOrderOf = (ordering: Ordering | undefined): SortOrder => (ordering === '-created_at' ? 'desc' : 'asc');

export interface PagePosition {
  clientId: string;
  filters: Filters;
  /** The list's order: 'asc' is oldest first. */
  order: SortOrder;
  /** 'next' walks from key in the list's order, 'previous' against it; no key means from the start. */
  direction: 'next' | 'previous';
  key: string | undefined;
  inclusive: boolean;
}

/** Where a list's rows come from: a page from a position, and whether anything lies beyond one. */
export interface KeysetSource<R> {
  page(position: PagePosition, limit: number): Promise<R[]>;
  hasBeyond(position: PagePosition): Promise<boolean>;
  /** A row's position in the list; its id unless the key has more columns (see KeysetQueries). */
  keyOf?(row: R): string;
}

const keyOf = <R extends { id: string }>(source: KeysetSource<R>, row: R): string => source.keyOf?.(row) ?? row.id;

export interface PageRequest {
  limit?: number | undefined;
  cursor?: string | undefined;
  ordering?: Ordering | undefined;
  /** The filters given (undefined ones are left out). */
  filters: Record<string, string | undefined>;
}

/** The paging part of a list's query string, as every list's schema (pageQuerySchema) declares it. */
export interface PageQuery {
  limit?: number;
  cursor?: string;
  ordering?: Ordering;
}

export interface Page<R> {
  next: string | null;
  previous: string | null;
  rows: R[];
}

type From = Omit<CursorState, 'limit' | 'filters' | 'order'>;

const givenFilters = (filters: Record<string, string | undefined>): Filters =>
  Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== undefined)) as Filters;

/**
 * One page of `list` for `clientId`: from the start (with the request's limit, ordering and filters) or from a
 * cursor (which carries them, so the request's own are then ignored). `link(cursor)` makes the URL of a
 * neighbouring page. A walk returns every row that exists throughout it exactly once, whatever is created or
 * deleted meanwhile.
 */
export async function walkPage<R extends { id: string }>(
  source: KeysetSource<R>,
  cursors: CursorCodec,
  clientId: string,
  list: string,
  request: PageRequest,
  link: (cursor: string) => string,
): Promise<Page<R>> {
  const state: Omit<CursorState, 'key'> & { key: string | undefined } =
    request.cursor !== undefined
      ? cursors.decode(clientId, list, request.cursor)
      : {
          direction: 'next',
          key: undefined,
          inclusive: false,
          limit: Math.min(request.limit ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
          order: sortOrderOf(request.ordering),
          filters: givenFilters(request.filters),
        };
  const rows = await source.page({ clientId, ...state }, state.limit + 1);
  const more = rows.length > state.limit;
  const page = rows.slice(0, state.limit);
  if (state.direction === 'previous') page.reverse();

  const forward = state.direction === 'next';
  const first = page[0] && keyOf(source, page[0]);
  const last = page.at(-1) && keyOf(source, page.at(-1)!);
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

  const { order, filters, limit } = state;
  const exists = async (from: From | undefined) =>
    from !== undefined && (await source.hasBeyond({ clientId, filters, order, ...from }));
  const hasNext = forward && page.length > 0 ? more : await exists(nextFrom);
  const hasPrevious = !forward && page.length > 0 ? more : state.key === undefined ? false : await exists(previousFrom);

  const linkFrom = (from: From | undefined) => link(cursors.encode(clientId, list, { ...from!, limit, order, filters }));
  return { next: hasNext ? linkFrom(nextFrom) : null, previous: hasPrevious ? linkFrom(previousFrom) : null, rows: page };
}

/**
 * Every row of a list with `filters`, in `order`, one page of `pageSize` after another: for exports, which must never
 * hold the whole list. Each page is a query of its own, so the walk sees every row that exists throughout it once.
 */
export async function* walkAll<R extends { id: string }>(
  source: KeysetSource<R>,
  clientId: string,
  options: { filters: Record<string, string | undefined>; order: SortOrder; pageSize: number },
): AsyncGenerator<R[]> {
  const filters = givenFilters(options.filters);
  let key: string | undefined;
  for (;;) {
    const rows = await source.page({ clientId, filters, order: options.order, direction: 'next', key, inclusive: false }, options.pageSize);
    if (rows.length > 0) yield rows;
    if (rows.length < options.pageSize) return;
    key = keyOf(source, rows.at(-1)!);
  }
}

type PageArgs = { clientId: string; limit: number } & Record<string, string | number>;

/**
 * The SQL of a keyset source over `table` (scoped by client_id): one prepared query per shape of position
 * (order, bound, which filters, which columns), made on first use. `filterColumns` maps each filter to its column.
 * The key is `id` unless `keyColumns` names two columns (created_at, id where ids are not time ordered); a key of
 * two columns is written in cursors as the JSON array of their values.
 */
export class KeysetQueries<T extends keyof Database> {
  private readonly queries = new Map<string, PreparedQuery<PageArgs, Database[T]>>();

  constructor(
    private readonly db: Db,
    private readonly table: T,
    private readonly filterColumns: Readonly<Record<string, string>>,
    private readonly keyColumns: readonly [string] | readonly [string, string] = ['id'],
  ) {}

  private query(position: PagePosition, columns: readonly string[] | 'all'): PreparedQuery<PageArgs, Database[T]> {
    // 'previous' reads against the list's order, from the key towards the start.
    const ascending = (position.direction === 'next') === (position.order === 'asc');
    const op =
      position.key === undefined ? undefined : ascending ? (position.inclusive ? '>=' : '>') : position.inclusive ? '<=' : '<';
    const filters = Object.keys(this.filterColumns).filter((name) => position.filters[name] !== undefined);
    const shape = `${columns === 'all' ? '*' : columns.join(',')} ${ascending ? 'asc' : 'desc'} ${op ?? 'start'} ${filters.join(',')}`;
    let query = this.queries.get(shape);
    if (query === undefined) {
      // The table and columns vary per list; the shape of the query does not.
      const db = this.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      const [first, second] = this.keyColumns;
      query = prepare(this.db, (p: PageArgs) => {
        let q = db.selectFrom(this.table as string).where('client_id', '=', p.clientId);
        for (const name of filters) q = q.where(this.filterColumns[name]!, '=', p[`filter_${name}`]);
        if (op !== undefined) {
          q =
            second === undefined
              ? q.where(first, op, p.key_0)
              : q.where((eb) => eb(eb.refTuple(first, second), op, eb.tuple(p.key_0, p.key_1)));
        }
        for (const column of this.keyColumns) q = q.orderBy(column, ascending ? 'asc' : 'desc');
        q = q.limit(p.limit);
        return (columns === 'all' ? q.selectAll() : q.select([...columns])) as unknown as Compilable<Database[T]>;
      });
      this.queries.set(shape, query);
    }
    return query;
  }

  private args(position: PagePosition, limit: number): PageArgs {
    const args: PageArgs = { clientId: position.clientId, limit };
    const key = position.key ?? '';
    if (this.keyColumns.length === 1) args.key_0 = key;
    else {
      const parts: unknown = position.key === undefined ? [] : JSON.parse(key);
      this.keyColumns.forEach((_, i) => (args[`key_${i}`] = String((parts as unknown[])[i] ?? '')));
    }
    for (const [name, value] of Object.entries(position.filters)) args[`filter_${name}`] = value;
    return args;
  }

  /** Up to `limit` rows from `position`, in walk order (against the list's order for 'previous'); all columns or `columns`. */
  page(position: PagePosition, limit: number, columns: readonly string[] | 'all' = 'all'): Promise<Array<Database[T]>> {
    return this.query(position, columns).all(this.args(position, limit));
  }

  /** The same rows as arrays of the values of `columns`, in that order (see PreparedQuery.values). */
  values(position: PagePosition, limit: number, columns: readonly string[]): Promise<unknown[][]> {
    return this.query(position, columns).values(this.args(position, limit));
  }

  async hasBeyond(position: PagePosition): Promise<boolean> {
    return (await this.query(position, this.keyColumns).first(this.args(position, 1))) !== undefined;
  }

  /** A row's position, as `position.key` takes it. */
  keyOf(row: Record<string, unknown>): string {
    return this.keyColumns.length === 1 ? String(row[this.keyColumns[0]]) : JSON.stringify(this.keyColumns.map((c) => row[c]));
  }
}
