// One user: every field (SSN masked until revealed), its accounts, edits of external_id and external_metadata,
// a fresh user token, and deletion after a confirmation that names the user.
import { useState } from 'preact/hooks';
import { api, ApiError, apiPath, type FieldErrors } from '../api';
import { Breakable, ConfirmDialog, Empty, ErrorMessage, Field, Link, Loading, Notice, Pager, PageTitle, Time, TokenOutput } from '../components';
import { describeError, fullName, list, maskSsn, messagesAt, orDash, otherMessages } from '../format';
import { useLoad } from '../hooks';
import { navigate } from '../router';
import type { Account, Page, User } from '../types';

interface Versioned {
  user: User;
  etag: string | null;
}

/** How the user is named to a person: by name when it has one, else the client's own id, else the user's id. */
function nameOf(user: User): string {
  return fullName(user) || (user.external_id ?? user.id);
}

export function UserPage({ id }: { id: string }) {
  const loaded = useLoad<Versioned>(
    async (signal) => {
      const { data, etag } = await api.call<User>('GET', `/v2/users/${encodeURIComponent(id)}`, { signal });
      return { user: data, etag };
    },
    [id],
  );

  if (loaded.status === 'loading') {
    return (
      <>
        <PageTitle title="User">User</PageTitle>
        <Loading>Loading the user…</Loading>
      </>
    );
  }
  if (loaded.status === 'error') {
    if (loaded.error instanceof ApiError && loaded.error.status === 404) {
      return (
        <>
          <PageTitle title="User not found">User not found</PageTitle>
          <div class="error" role="alert">
            <p>
              No user with the ID <code>{id}</code> was found for this client. It may have been deleted, or the ID may be
              mistyped. Find the user in the <Link to="/users">list of users</Link>.
            </p>
          </div>
        </>
      );
    }
    return (
      <>
        <PageTitle title="User">User</PageTitle>
        <ErrorMessage onRetry={loaded.reload}>{describeError(loaded.error, 'load the user')}</ErrorMessage>
      </>
    );
  }
  const { user, etag } = loaded.data;
  return (
    <>
      <p class="breadcrumb">
        <Link to="/users">← Users</Link>
      </p>
      {fullName(user) ? (
        <PageTitle title={fullName(user)}>{fullName(user)}</PageTitle>
      ) : (
        <PageTitle title={`User ${nameOf(user)}`}>User {user.external_id ?? <span class="id">{user.id}</span>}</PageTitle>
      )}
      <Details user={user} />
      <Accounts userId={user.id} />
      <EditForm user={user} etag={etag} onSaved={(saved) => loaded.set(saved)} onReload={loaded.reload} />
      <UserToken userId={user.id} />
      <DeleteUser user={user} etag={etag} />
    </>
  );
}

function Details({ user }: { user: User }) {
  const [revealed, setRevealed] = useState(false);
  const { address, birth_date: birth } = user;
  const addressText = [address.line1, address.line2, address.city, address.state, address.postal_code, address.country].filter(Boolean).join(', ');
  const birthText = birth.year || birth.month || birth.day ? [birth.year ?? '????', birth.month ?? '??', birth.day ?? '??'].map((part) => String(part).padStart(2, '0')).join('-') : '';
  return (
    <section aria-labelledby="details-heading" class="card">
      <h2 id="details-heading">Details</h2>
      <dl class="details">
        <dt>ID</dt>
        <dd class="id">{user.id}</dd>
        <dt>Created</dt>
        <dd>
          <Time value={user.created_at} />
        </dd>
        <dt>External ID</dt>
        <dd>{orDash(user.external_id)}</dd>
        <dt>First name</dt>
        <dd>{orDash(user.first_name)}</dd>
        <dt>Last name</dt>
        <dd>{orDash(user.last_name)}</dd>
        <dt>Email</dt>
        <dd>{orDash(user.email)}</dd>
        <dt>Phone number</dt>
        <dd>{orDash(user.phone_number)}</dd>
        <dt>SSN</dt>
        <dd>
          {user.ssn === null ? (
            '—'
          ) : (
            <span class="inline">
              <span id="ssn-value" class="ssn">
                {revealed ? user.ssn : maskSsn(user.ssn)}
              </span>
              <button type="button" class="small" aria-pressed={revealed} aria-controls="ssn-value" onClick={() => setRevealed(!revealed)}>
                {revealed ? 'Hide SSN' : 'Reveal SSN'}
              </button>
            </span>
          )}
        </dd>
        <dt>Address</dt>
        <dd>{orDash(addressText)}</dd>
        <dt>Birth date</dt>
        <dd>{orDash(birthText)}</dd>
        <dt>Items connected</dt>
        <dd>{list(user.items_connected)}</dd>
        <dt>Employers connected</dt>
        <dd>{list(user.employers_connected)}</dd>
        <dt>External metadata</dt>
        <dd>
          <pre class="json">{JSON.stringify(user.external_metadata, null, 2)}</pre>
        </dd>
      </dl>
    </section>
  );
}

const STATUS_LABELS: Record<Account['connection']['status'], string> = {
  connecting: 'Connecting',
  connected: 'Connected',
  error: 'Failed',
};

function Accounts({ userId }: { userId: string }) {
  const [path, setPath] = useState(`/v2/accounts?${new URLSearchParams({ user: userId, limit: '50' })}`);
  const accounts = useLoad((signal) => api.get<Page<Account>>(path, { signal }), [path]);
  return (
    <section aria-labelledby="accounts-heading" class="card">
      <h2 id="accounts-heading">Accounts</h2>
      {accounts.status === 'loading' && <Loading>Loading accounts…</Loading>}
      {accounts.status === 'error' && <ErrorMessage onRetry={accounts.reload}>{describeError(accounts.error, "load the user's accounts")}</ErrorMessage>}
      {accounts.status === 'ok' && accounts.data.results.length === 0 && (
        <Empty>
          <p>No accounts: this user has not started connecting a payroll account through Link yet.</p>
        </Empty>
      )}
      {accounts.status === 'ok' && accounts.data.results.length > 0 && (
        <>
          <table class="stack">
            <caption class="visually-hidden">Payroll connections of this user</caption>
            <thead>
              <tr>
                <th scope="col">Item</th>
                <th scope="col">Employers</th>
                <th scope="col">Status</th>
                <th scope="col">Error</th>
                <th scope="col">Updated</th>
                <th scope="col">Last scan</th>
              </tr>
            </thead>
            <tbody>
              {accounts.data.results.map((account) => (
                <tr key={account.id}>
                  <td data-label="Item">
                    {account.item}
                    {account.source !== account.item && <span class="muted"> (source {account.source})</span>}
                  </td>
                  <td data-label="Employers">{list(account.employers)}</td>
                  <td data-label="Status">
                    <span class={`badge ${account.connection.status}`}>{STATUS_LABELS[account.connection.status]}</span>
                  </td>
                  <td data-label="Error">
                    {account.connection.error_code ? (
                      <>
                        <code>
                          <Breakable text={account.connection.error_code} />
                        </code>
                        {account.connection.error_message && <span>: {account.connection.error_message}</span>}
                      </>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td data-label="Updated">
                    <Time value={account.connection.updated_at} />
                  </td>
                  <td data-label="Last scan">
                    <Time value={account.scanned_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager label="Pages of accounts" previous={accounts.data.previous} next={accounts.data.next} onPage={(link) => setPath(apiPath(link))} />
        </>
      )}
    </section>
  );
}

interface EditProps {
  user: User;
  etag: string | null;
  onSaved: (saved: Versioned) => void;
  onReload: () => void;
}

const EDITED = ['external_id', 'external_metadata'];
/** The API's limit; checked here, not by maxLength, which would cut a pasted value short without a word. */
const EXTERNAL_ID_MAX = 100;

function EditForm({ user, etag, onSaved, onReload }: EditProps) {
  const [externalId, setExternalId] = useState(user.external_id ?? '');
  const [metadata, setMetadata] = useState(JSON.stringify(user.external_metadata, null, 2));
  const [fields, setFields] = useState<FieldErrors | undefined>();
  const [problem, setProblem] = useState<{ text: string; stale?: boolean } | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setSaved(false);
    setProblem(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(metadata);
    } catch (error) {
      setFields({ external_metadata: [`This is not valid JSON (${(error as Error).message}). Fix it, or enter {} for no metadata.`] });
      document.getElementById('edit-metadata')?.focus();
      return;
    }
    const length = [...externalId].length;
    if (length > EXTERNAL_ID_MAX) {
      setFields({ external_id: [`Too long: at most ${EXTERNAL_ID_MAX} characters, and this is ${length}. Shorten it, then save.`] });
      document.getElementById('edit-external-id')?.focus();
      return;
    }
    const body: Record<string, unknown> = {};
    const newExternalId = externalId === '' ? null : externalId;
    if (newExternalId !== user.external_id) body.external_id = newExternalId;
    if (JSON.stringify(parsed) !== JSON.stringify(user.external_metadata)) body.external_metadata = parsed;
    setFields(undefined);
    if (Object.keys(body).length === 0) {
      setProblem({ text: 'Nothing changed: edit a field, then save.' });
      return;
    }
    setBusy(true);
    try {
      const answer = await api.call<User>('PATCH', `/v2/users/${user.id}`, { body, ifMatch: etag });
      onSaved({ user: answer.data, etag: answer.etag });
      setMetadata(JSON.stringify(answer.data.external_metadata, null, 2));
      setSaved(true);
    } catch (error) {
      if (error instanceof ApiError && error.fields) {
        setFields(error.fields);
        const others = otherMessages(error.fields, EDITED);
        if (others.length) setProblem({ text: `Not saved: ${others.join(' ')}` });
      } else if (error instanceof ApiError && error.status === 412) {
        setProblem({ text: 'Not saved: someone changed this user since you opened it. Reload it to see the current values, then make your change again.', stale: true });
      } else {
        setProblem({ text: describeError(error, 'save the changes') });
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="edit-heading" class="card">
      <h2 id="edit-heading">Edit</h2>
      <form onSubmit={submit} noValidate>
        <Field id="edit-external-id" label="External ID" errors={messagesAt(fields, 'external_id')} hint="Your own reference for this user, up to 100 characters. Leave empty to clear it.">
          {(describedBy, invalid) => (
            <input
              id="edit-external-id"
              value={externalId}
              spellcheck={false}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              onInput={(event) => setExternalId(event.currentTarget.value)}
            />
          )}
        </Field>
        <Field id="edit-metadata" label="External metadata (JSON)" errors={messagesAt(fields, 'external_metadata')} hint='Any JSON value, e.g. {"stage": 2}. It replaces the stored metadata whole.'>
          {(describedBy, invalid) => (
            <textarea
              id="edit-metadata"
              rows={6}
              class="code"
              spellcheck={false}
              value={metadata}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              onInput={(event) => setMetadata(event.currentTarget.value)}
            />
          )}
        </Field>
        {problem && (
          <ErrorMessage onRetry={problem.stale ? onReload : undefined}>{problem.text}</ErrorMessage>
        )}
        {saved && <Notice>Saved.</Notice>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save changes'}
        </button>
      </form>
    </section>
  );
}

function UserToken({ userId }: { userId: string }) {
  const [token, setToken] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const { data } = await api.call<{ user_token: string }>('POST', '/v2/user-tokens', { body: { user: userId } });
      setToken(data.user_token);
    } catch (failure) {
      setError(describeError(failure, 'create a user token'));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="token-heading" class="card">
      <h2 id="token-heading">User token</h2>
      <p>A user token lets this user's Link session connect payroll accounts. It is valid for one hour.</p>
      {token && <TokenOutput id="user-token" token={token} />}
      {error && <ErrorMessage>{error}</ErrorMessage>}
      <button type="button" onClick={create} disabled={busy}>
        {busy ? 'Creating…' : token ? 'Create another token' : 'Create user token'}
      </button>
    </section>
  );
}

function DeleteUser({ user, etag }: { user: User; etag: string | null }) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const name = nameOf(user);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.call('DELETE', `/v2/users/${user.id}`, { ifMatch: etag });
      navigate('/users', { notice: `User ${name} was deleted.` });
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 404) {
        navigate('/users', { notice: `User ${name} had already been deleted.` });
        return;
      }
      setError(
        failure instanceof ApiError && failure.status === 412
          ? 'Not deleted: someone changed this user since you opened it. Cancel, reload the page and check it before deleting.'
          : describeError(failure, 'delete the user'),
      );
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="delete-heading" class="card danger-zone">
      <h2 id="delete-heading">Delete</h2>
      <p>Deleting the user also deletes its accounts, and its user tokens stop working. It cannot be undone.</p>
      <button type="button" class="danger" onClick={() => setOpen(true)}>
        Delete user…
      </button>
      {open && (
        <ConfirmDialog
          title={`Delete user ${name}?`}
          confirmLabel="Delete user"
          busy={busy}
          error={error}
          onConfirm={confirm}
          onCancel={() => {
            setOpen(false);
            setError(null);
          }}
        >
          <p>
            User <strong>{name}</strong>
            {name !== user.id && (
              <>
                {' '}
                (ID <code>{user.id}</code>)
              </>
            )}{' '}
            and its accounts will be deleted. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
