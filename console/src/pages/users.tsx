// The users, newest first, paged with the API's cursors; an exact search by external_id.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { Empty, ErrorMessage, Link, Loading, Pager, PageTitle, Time } from '../components';
import { describeError, fullName, list, orDash } from '../format';
import { useLoad } from '../hooks';
import { navigate, useRoute } from '../router';
import type { Page, User } from '../types';

const PAGE_SIZE = '20';

/** The console's own URL for a page of the list: the search term, and the API's cursor when not on the first page. */
function usersUrl(externalId: string, link?: string): string {
  const query = new URLSearchParams();
  if (externalId) query.set('external_id', externalId);
  const cursor = link ? new URL(link, location.origin).searchParams.get('cursor') : null;
  if (cursor) query.set('cursor', cursor);
  const text = query.toString();
  return `/users${text ? `?${text}` : ''}`;
}

export function UsersPage() {
  const { query } = useRoute();
  const externalId = query.get('external_id') ?? '';
  const cursor = query.get('cursor');
  // A cursor carries the walk's order, limit and filter; the first page states them.
  const path = cursor
    ? `/v2/users?cursor=${encodeURIComponent(cursor)}`
    : `/v2/users?${new URLSearchParams({ ordering: '-created_at', limit: PAGE_SIZE, ...(externalId ? { external_id: externalId } : {}) })}`;
  const users = useLoad((signal) => api.get<Page<User>>(path, { signal }), [path]);
  const [search, setSearch] = useState(externalId);
  useEffect(() => setSearch(externalId), [externalId]);
  const results = useRef<HTMLElement>(null);
  const paged = useRef(false);
  useEffect(() => {
    if (users.status === 'ok' && paged.current) {
      paged.current = false;
      results.current?.focus();
    }
  }, [users.status]);

  const submit = (event: Event) => {
    event.preventDefault();
    navigate(usersUrl(search.trim()));
  };

  return (
    <>
      <div class="title-row">
        <PageTitle title="Users">Users</PageTitle>
        <Link to="/users/new" class="button primary">
          Create user
        </Link>
      </div>
      <form class="search" role="search" onSubmit={submit} noValidate>
        <label for="search-external-id">Find by external ID (exact match)</label>
        <div class="inline">
          <input id="search-external-id" type="search" value={search} spellcheck={false} onInput={(event) => setSearch(event.currentTarget.value)} />
          <button type="submit">Search</button>
          {externalId && (
            <Link to="/users" class="button">
              Show all users
            </Link>
          )}
        </div>
      </form>
      <section ref={results} tabIndex={-1} aria-labelledby="users-heading" class="results">
        <h2 id="users-heading" class="visually-hidden">
          {externalId ? `Users with external ID “${externalId}”` : 'All users, newest first'}
        </h2>
        {users.status === 'loading' && <Loading>Loading users…</Loading>}
        {users.status === 'error' && <ErrorMessage onRetry={users.reload}>{describeError(users.error, 'load the users')}</ErrorMessage>}
        {users.status === 'ok' && users.data.results.length === 0 && (
          <Empty>
            {externalId ? (
              <p>
                No user has the external ID “{externalId}”. The match is exact (upper and lower case, spaces): check the ID, or{' '}
                <Link to="/users">show all users</Link>.
              </p>
            ) : cursor ? (
              <p>
                No more users on this page. <Link to="/users">Back to the newest users</Link>.
              </p>
            ) : (
              <p>
                No users yet. <Link to="/users/new">Create the first one</Link>.
              </p>
            )}
          </Empty>
        )}
        {users.status === 'ok' && users.data.results.length > 0 && (
          <>
            <table class="stack">
              <caption class="visually-hidden">{externalId ? `Users with external ID ${externalId}` : 'Users, newest first'}</caption>
              <thead>
                <tr>
                  <th scope="col">ID</th>
                  <th scope="col">Name</th>
                  <th scope="col">Created</th>
                  <th scope="col">External ID</th>
                  <th scope="col">Items connected</th>
                  <th scope="col">Employers connected</th>
                </tr>
              </thead>
              <tbody>
                {users.data.results.map((user) => (
                  <tr key={user.id}>
                    <td data-label="ID">
                      <Link to={`/users/${user.id}`} class="id">
                        {user.id}
                      </Link>
                    </td>
                    <td data-label="Name">{orDash(fullName(user))}</td>
                    <td data-label="Created">
                      <Time value={user.created_at} />
                    </td>
                    <td data-label="External ID">{orDash(user.external_id)}</td>
                    <td data-label="Items connected">{list(user.items_connected)}</td>
                    <td data-label="Employers connected">{list(user.employers_connected)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager
              label="Pages of users"
              previous={users.data.previous}
              next={users.data.next}
              onPage={(link) => {
                paged.current = true;
                navigate(usersUrl(externalId, link));
              }}
            />
          </>
        )}
      </section>
    </>
  );
}
