// Sign-in with an API key id and secret, checked against the API before the console keeps them.
import { useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { ErrorMessage, Field, Notice, PageTitle } from '../components';
import { describeError } from '../format';
import { session } from '../session';

export function SignInPage() {
  const [keyId, setKeyId] = useState('');
  const [secret, setSecret] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [ended] = useState(session.takeEndReason);

  const submit = async (event: Event) => {
    event.preventDefault();
    const credentials = { keyId: keyId.trim(), secret: secret.trim() };
    if (!credentials.keyId || !credentials.secret) {
      setError('Enter both the API key id and its secret.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.get('/v2/users?limit=1', { credentials });
      session.signIn(credentials);
    } catch (failure) {
      setError(
        failure instanceof ApiError && failure.status === 401
          ? 'Sign-in failed: this API key id and secret were not accepted. Check both (copy them again from where the key was created) and try again; a revoked key no longer works.'
          : describeError(failure, 'sign in'),
      );
      setBusy(false);
    }
  };

  return (
    <div class="card narrow">
      <PageTitle title="Sign in">Users API Console</PageTitle>
      <p>Sign in with one of your client's API keys. The console keeps it in this browser tab only, until you sign out or close the tab.</p>
      {ended && <Notice>{ended}</Notice>}
      {/* Kept from password managers too (autocomplete off): the key is for this tab only. */}
      <form onSubmit={submit} noValidate>
        <Field id="key-id" label="API key id">
          {(describedBy) => (
            <input
              id="key-id"
              autoComplete="off"
              autoFocus
              spellcheck={false}
              value={keyId}
              aria-describedby={describedBy}
              onInput={(event) => setKeyId(event.currentTarget.value)}
            />
          )}
        </Field>
        <Field id="key-secret" label="API key secret">
          {(describedBy) => (
            <input
              id="key-secret"
              type="password"
              autoComplete="off"
              value={secret}
              aria-describedby={describedBy}
              onInput={(event) => setSecret(event.currentTarget.value)}
            />
          )}
        </Field>
        {error && <ErrorMessage>{error}</ErrorMessage>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
