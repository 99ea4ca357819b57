// Every paged list ({next, previous, results}) walked through its `next` cursors.

export interface Page<T> {
  next: string | null;
  previous: string | null;
  results: T[];
}

/** The cursor a `next`/`previous` URL carries (the URL's host may be a proxy's: only the cursor is followed). */
export function cursorOf(link: string): string {
  const cursor = new URL(link).searchParams.get('cursor');
  if (cursor === null) throw new TypeError(`Not a page link: ${link}`);
  return cursor;
}

/**
 * A walk from a list's first page (read with the caller's query) through its `next` cursors, which carry the limit,
 * ordering and filters. Nothing is fetched until it is iterated, and every iteration walks afresh:
 * `for await (const user of client.users.list({ limit: 100 }))`.
 */
export class PageWalk<T> implements AsyncIterable<T> {
  constructor(private readonly fetchPage: (cursor: string | undefined) => Promise<Page<T>>) {}

  /** The pages, one request each. */
  async *pages(): AsyncGenerator<Page<T>, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.fetchPage(cursor);
      yield page;
      cursor = page.next === null ? undefined : cursorOf(page.next);
    } while (cursor !== undefined);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page.results;
  }

  /** Every item of the walk (mind the size of the list). */
  async toArray(): Promise<T[]> {
    const items: T[] = [];
    for await (const item of this) items.push(item);
    return items;
  }
}
