// This client's API keys, and the users list as a CSV file.
import { useState } from 'preact/hooks';
import { api, ApiError, apiPath } from '../api';
import { Empty, ErrorMessage, Loading, Notice, Pager, PageTitle, Time } from '../components';
import { describeError } from '../format';
import { useLoad } from '../hooks';
import type { ApiKey, Page } from '../types';

/** An endpoint this console uses that an older service lacks: it answers 404 for the path itself. */
function missingEndpoint(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404;
}

export function KeysPage() {
  return (
    <>
      <PageTitle title="Keys and export">Keys and export</PageTitle>
      <Keys />
      <Export />
    </>
  );
}

function Keys() {
  const [path, setPath] = useState('/v2/api-keys?limit=50');
  const keys = useLoad((signal) => api.get<Page<ApiKey>>(path, { signal }), [path]);
  return (
    <section class="card" aria-labelledby="keys-heading">
      <h2 id="keys-heading">API keys</h2>
      <p>Keys are created and revoked by whoever runs the service (<code>users-api keys</code>); a secret is shown only once, when its key is created.</p>
      {keys.status === 'loading' && <Loading>Loading keys…</Loading>}
      {keys.status === 'error' &&
        (missingEndpoint(keys.error) ? (
          <ErrorMessage>This service does not list API keys: it is older than this console. Ask whoever runs it to update it.</ErrorMessage>
        ) : (
          <ErrorMessage onRetry={keys.reload}>{describeError(keys.error, 'load the API keys')}</ErrorMessage>
        ))}
      {keys.status === 'ok' && keys.data.results.length === 0 && (
        <Empty>
          <p>No keys listed.</p>
        </Empty>
      )}
      {keys.status === 'ok' && keys.data.results.length > 0 && (
        <>
          <table class="stack">
            <caption class="visually-hidden">API keys of this client</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key id</th>
                <th scope="col">Created</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {keys.data.results.map((key) => (
                <tr key={key.id} class={key.current ? 'current' : undefined}>
                  <td data-label="Name">
                    {key.name}
                    {key.current && <span class="badge current">This console's key</span>}
                  </td>
                  <td data-label="Key id">
                    <code>{key.id}</code>
                  </td>
                  <td data-label="Created">
                    <Time value={key.created_at} />
                  </td>
                  <td data-label="Status">
                    {key.revoked_at ? (
                      <>
                        <span class="badge error">Revoked</span>
                        <span class="when">
                          <Time value={key.revoked_at} />
                        </span>
                      </>
                    ) : (
                      <span class="badge connected">Active</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager label="Pages of keys" previous={keys.data.previous} next={keys.data.next} onPage={(link) => setPath(apiPath(link))} />
        </>
      )}
    </section>
  );
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

function Export() {
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const download = async () => {
    setBusy(true);
    setDone(null);
    setError(null);
    try {
      // In the order of the console's list: newest first.
      const { blob, filename } = await api.download('/v2/users/export.csv?ordering=-created_at');
      const name = filename ?? `users-${today()}.csv`;
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setDone(`Downloaded ${name} (${(blob.size / 1024).toFixed(1)} KB).`);
    } catch (failure) {
      setError(
        missingEndpoint(failure)
          ? 'This service cannot export users: it is older than this console. Ask whoever runs it to update it.'
          : describeError(failure, 'export the users'),
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card" aria-labelledby="export-heading">
      <h2 id="export-heading">Export users</h2>
      <p>
        Every user of this client as a CSV file, newest first: <code>id, created_at, external_id, items_connected, employers_connected</code> (lists joined with{' '}
        <code>;</code>).
      </p>
      {done && <Notice>{done}</Notice>}
      {error && <ErrorMessage>{error}</ErrorMessage>}
      <button type="button" class="primary" onClick={download} disabled={busy}>
        {busy ? 'Preparing the file…' : 'Download CSV'}
      </button>
    </section>
  );
}
