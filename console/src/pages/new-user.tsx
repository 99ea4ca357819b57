// Create a user from a form (POST /v2/users), then show its user token to copy.
import { useRef, useState } from 'preact/hooks';
import { api, ApiError, idempotencyKeyFor, type FieldErrors } from '../api';
import { ErrorMessage, Field, Link, PageTitle, TokenOutput } from '../components';
import { describeError, groupMessages, messagesAt, otherMessages } from '../format';

const TEXT_FIELDS = [
  { name: 'first_name', label: 'First name', autoComplete: 'off' },
  { name: 'last_name', label: 'Last name', autoComplete: 'off' },
  { name: 'email', label: 'Email', type: 'email' },
  { name: 'phone_number', label: 'Phone number', type: 'tel', hint: 'E.164 (+12125555555) recommended; without a country code it is read as a US number.' },
  { name: 'ssn', label: 'SSN', hint: 'Nine digits, hyphens allowed.' },
  { name: 'external_id', label: 'External ID', hint: 'Your own reference for this user (up to 100 characters), to find it again.' },
] as const;

const ADDRESS_FIELDS = [
  { name: 'line1', label: 'Address line 1' },
  { name: 'line2', label: 'Address line 2' },
  { name: 'city', label: 'City' },
  { name: 'state', label: 'State' },
  { name: 'postal_code', label: 'Postal code' },
  { name: 'country', label: 'Country', hint: 'Two-letter code, e.g. US.' },
] as const;

const BIRTH_FIELDS = [
  { name: 'year', label: 'Year' },
  { name: 'month', label: 'Month' },
  { name: 'day', label: 'Day' },
] as const;

const SHOWN = ['first_name', 'last_name', 'email', 'phone_number', 'ssn', 'external_id', 'external_metadata', 'address', 'birth_date'];

type Values = Record<string, string>;

/** The create body: only the fields filled in. */
function bodyOf(values: Values): { body?: Record<string, unknown>; metadataError?: string } {
  const body: Record<string, unknown> = {};
  for (const { name } of TEXT_FIELDS) if (values[name]?.trim()) body[name] = values[name]?.trim();
  const address = Object.fromEntries(ADDRESS_FIELDS.filter(({ name }) => values[`address.${name}`]?.trim()).map(({ name }) => [name, values[`address.${name}`]?.trim()]));
  if (Object.keys(address).length) body.address = address;
  const birth: Record<string, unknown> = {};
  for (const { name } of BIRTH_FIELDS) {
    const raw = values[`birth_date.${name}`]?.trim();
    // A non-number is sent as typed, for the API to say what is wrong with it.
    if (raw) birth[name] = /^\d+$/.test(raw) ? Number(raw) : raw;
  }
  if (Object.keys(birth).length) body.birth_date = birth;
  const metadata = values.external_metadata?.trim();
  if (metadata) {
    try {
      body.external_metadata = JSON.parse(metadata);
    } catch (error) {
      return { metadataError: `This is not valid JSON (${(error as Error).message}). Fix it, or leave it empty.` };
    }
  }
  return { body };
}

function GroupErrors({ messages }: { messages: string[] }) {
  if (messages.length === 0) return null;
  return (
    <ul class="field-errors">
      {messages.map((message) => (
        <li key={message}>{message}</li>
      ))}
    </ul>
  );
}

export function NewUserPage() {
  const [values, setValues] = useState<Values>({});
  const [fields, setFields] = useState<FieldErrors | undefined>();
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<{ id: string; user_token: string; externalId: string | null } | null>(null);
  const lastKey = useRef<{ body: string; key: string } | null>(null);
  const resultHeading = useRef<HTMLHeadingElement>(null);

  const set = (name: string) => (event: { currentTarget: HTMLInputElement | HTMLTextAreaElement }) => setValues({ ...values, [name]: event.currentTarget.value });

  const submit = async (event: Event) => {
    event.preventDefault();
    setProblem(null);
    const { body, metadataError } = bodyOf(values);
    if (!body) {
      setFields({ external_metadata: [metadataError ?? ''] });
      document.getElementById('new-external_metadata')?.focus();
      return;
    }
    setFields(undefined);
    setBusy(true);
    // A retry of the same body (after a timeout, say) is answered with the first user, never a second one.
    lastKey.current = idempotencyKeyFor(body, lastKey.current);
    try {
      const { data } = await api.call<{ id: string; user_token: string }>('POST', '/v2/users', { body, idempotencyKey: lastKey.current.key });
      setCreated({ ...data, externalId: typeof body.external_id === 'string' ? body.external_id : null });
      lastKey.current = null;
      setTimeout(() => resultHeading.current?.focus());
    } catch (error) {
      if (error instanceof ApiError && error.fields) {
        setFields(error.fields);
        const others = otherMessages(error.fields, SHOWN);
        setProblem(`Not created: ${others.length ? others.join(' ') : 'correct the fields marked below.'}`);
      } else {
        setProblem(describeError(error, 'create the user'));
      }
    } finally {
      setBusy(false);
    }
  };

  if (created) {
    return (
      <>
        <PageTitle title="User created">Create user</PageTitle>
        <section class="card" aria-labelledby="created-heading">
          <h2 id="created-heading" tabIndex={-1} ref={resultHeading}>
            User created
          </h2>
          <p>
            <Link to={`/users/${created.id}`}>Open user {created.externalId ?? created.id}</Link>
          </p>
          <TokenOutput id="new-user-token" token={created.user_token} />
          <p class="hint">Valid for one hour: hand it to the applicant's Link session. A new one can be made on the user's page.</p>
          <button
            type="button"
            onClick={() => {
              setCreated(null);
              setValues({});
            }}
          >
            Create another user
          </button>
        </section>
      </>
    );
  }

  const text = (name: string, label: string, { type = 'text', hint, errorsPath = [name] }: { type?: 'text' | 'email' | 'tel'; hint?: string; errorsPath?: string[] } = {}) => (
    <Field key={name} id={`new-${name}`} label={label} errors={messagesAt(fields, ...errorsPath)} hint={hint}>
      {(describedBy, invalid) => (
        <input
          id={`new-${name}`}
          // Preact's input props are a union discriminated by `type`: one of the three is as good as another here.
          type={type as 'text'}
          value={values[name] ?? ''}
          autoComplete="off"
          aria-describedby={describedBy}
          aria-invalid={invalid}
          onInput={set(name)}
        />
      )}
    </Field>
  );

  return (
    <>
      <PageTitle title="Create user">Create user</PageTitle>
      <form class="card" onSubmit={submit} noValidate>
        <p>Every field is optional. The user gets a user token for Link when it is created.</p>
        <div class="grid">
          {TEXT_FIELDS.map((field) => text(field.name, field.label, { type: 'type' in field ? field.type : 'text', hint: 'hint' in field ? field.hint : undefined }))}
        </div>
        <fieldset>
          <legend>Address</legend>
          <div class="grid">
            {ADDRESS_FIELDS.map((field) =>
              text(`address.${field.name}`, field.label, { hint: 'hint' in field ? field.hint : undefined, errorsPath: ['address', field.name] }),
            )}
          </div>
          <GroupErrors messages={groupMessages(fields, 'address')} />
        </fieldset>
        <fieldset>
          <legend>Birth date</legend>
          <div class="grid three">
            {BIRTH_FIELDS.map((field) => text(`birth_date.${field.name}`, field.label, { type: 'text', errorsPath: ['birth_date', field.name] }))}
          </div>
          <GroupErrors messages={groupMessages(fields, 'birth_date')} />
        </fieldset>
        <Field id="new-external_metadata" label="External metadata (JSON)" errors={messagesAt(fields, 'external_metadata')} hint='Optional: any JSON value, e.g. {"stage": 1}.'>
          {(describedBy, invalid) => (
            <textarea
              id="new-external_metadata"
              rows={4}
              class="code"
              spellcheck={false}
              value={values.external_metadata ?? ''}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              onInput={set('external_metadata')}
            />
          )}
        </Field>
        {problem && <ErrorMessage>{problem}</ErrorMessage>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create user'}
        </button>
      </form>
    </>
  );
}
