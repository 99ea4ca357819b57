// Webhook subscriptions: the list, a form to create one, and deletion after a confirmation that names it.
import { useState } from 'preact/hooks';
import { api, ApiError, apiPath, type FieldErrors } from '../api';
import { Breakable, ConfirmDialog, Empty, ErrorMessage, Field, Link, Loading, Notice, Pager, PageTitle, Time } from '../components';
import { describeError, messagesAt, otherMessages } from '../format';
import { useLoad } from '../hooks';
import { WEBHOOK_EVENTS, type Page, type Webhook } from '../types';

const FIRST_PAGE = '/v2/webhooks?limit=50';

export function WebhooksPage() {
  const [path, setPath] = useState(FIRST_PAGE);
  const webhooks = useLoad((signal) => api.get<Page<Webhook>>(path, { signal }), [path]);
  const [deleting, setDeleting] = useState<Webhook | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const reloadFirst = () => (path === FIRST_PAGE ? webhooks.reload() : setPath(FIRST_PAGE));

  return (
    <>
      <PageTitle title="Webhooks">Webhooks</PageTitle>
      <p>Your backend learns of every change to users and accounts from signed POSTs to the subscriptions' URLs.</p>
      {notice && <Notice>{notice}</Notice>}
      <section class="card" aria-labelledby="subscriptions-heading">
        <h2 id="subscriptions-heading">Subscriptions</h2>
        {webhooks.status === 'loading' && <Loading>Loading subscriptions…</Loading>}
        {webhooks.status === 'error' && <ErrorMessage onRetry={webhooks.reload}>{describeError(webhooks.error, 'load the subscriptions')}</ErrorMessage>}
        {webhooks.status === 'ok' && webhooks.data.results.length === 0 && (
          <Empty>
            <p>No subscriptions yet: create one below to have events sent to your backend.</p>
          </Empty>
        )}
        {webhooks.status === 'ok' && webhooks.data.results.length > 0 && (
          <>
            <table class="stack">
              <caption class="visually-hidden">Webhook subscriptions</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">URL</th>
                  <th scope="col">Events</th>
                  <th scope="col">Signed</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {webhooks.data.results.map((webhook) => (
                  <tr key={webhook.id}>
                    <td data-label="Name">
                      <Link to={`/webhooks/${webhook.id}`}>{webhook.name}</Link>
                    </td>
                    <td data-label="URL" class="url">
                      <Breakable text={webhook.url} />
                    </td>
                    <td data-label="Events">
                      {webhook.events.join(', ')}
                      {webhook.config.include_resource && <span class="muted"> (with the resource)</span>}
                    </td>
                    <td data-label="Signed">{webhook.has_secret ? 'Yes' : 'No'}</td>
                    <td data-label="Created">
                      <Time value={webhook.created_at} />
                    </td>
                    <td data-label="Actions" class="actions-cell">
                      <div class="actions">
                        <Link to={`/webhooks/${webhook.id}`} class="button small" aria-label={`Deliveries of ${webhook.name}`}>
                          Deliveries
                        </Link>
                        <button type="button" class="small danger" aria-label={`Delete ${webhook.name}…`} onClick={() => setDeleting(webhook)}>
                          Delete…
                        </button>
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager label="Pages of subscriptions" previous={webhooks.data.previous} next={webhooks.data.next} onPage={(link) => setPath(apiPath(link))} />
          </>
        )}
      </section>
      <CreateWebhook
        onCreated={(webhook) => {
          setNotice(`Subscription ${webhook.name} created.`);
          reloadFirst();
        }}
      />
      {deleting && (
        <DeleteWebhook
          webhook={deleting}
          onDone={(message) => {
            setDeleting(null);
            if (message) {
              setNotice(message);
              reloadFirst();
            }
          }}
        />
      )}
    </>
  );
}

function DeleteWebhook({ webhook, onDone }: { webhook: Webhook; onDone: (notice: string | null) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirm = async () => {
    setBusy(true);
    try {
      await api.call('DELETE', `/v2/webhooks/${webhook.id}`);
      onDone(`Subscription ${webhook.name} was deleted.`);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 404) return onDone(`Subscription ${webhook.name} had already been deleted.`);
      setError(describeError(failure, 'delete the subscription'));
      setBusy(false);
    }
  };
  return (
    <ConfirmDialog title={`Delete subscription ${webhook.name}?`} confirmLabel="Delete subscription" busy={busy} error={error} onConfirm={confirm} onCancel={() => onDone(null)}>
      <p>
        Events stop being sent to <code class="url"><Breakable text={webhook.url} /></code>, and those not delivered yet are dropped. This cannot be undone.
      </p>
    </ConfirmDialog>
  );
}

const EMPTY_FORM = { name: '', url: '', secret: '', events: [] as string[], includeResource: false };

function CreateWebhook({ onCreated }: { onCreated: (webhook: Webhook) => void }) {
  const [form, setForm] = useState(EMPTY_FORM);
  const [fields, setFields] = useState<FieldErrors | undefined>();
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const all = form.events.includes('*');

  const toggle = (event: string, checked: boolean) =>
    setForm({ ...form, events: checked ? [...form.events.filter((e) => e !== event), event] : form.events.filter((e) => e !== event) });

  const submit = async (submitEvent: Event) => {
    submitEvent.preventDefault();
    setProblem(null);
    if (form.events.length === 0) {
      setFields({ events: ['Choose at least one event, or all events.'] });
      document.getElementById('event-*')?.focus();
      return;
    }
    const body = {
      name: form.name.trim(),
      url: form.url.trim(),
      events: all ? ['*'] : WEBHOOK_EVENTS.filter((event) => form.events.includes(event)),
      ...(form.secret ? { secret: form.secret } : {}),
      config: { include_resource: form.includeResource },
    };
    setBusy(true);
    try {
      const { data } = await api.call<Webhook>('POST', '/v2/webhooks', { body });
      setForm(EMPTY_FORM);
      setFields(undefined);
      onCreated(data);
    } catch (error) {
      if (error instanceof ApiError && error.fields) {
        setFields(error.fields);
        const others = otherMessages(error.fields, ['name', 'url', 'secret', 'events']);
        setProblem(`Not created: ${others.length ? others.join(' ') : 'correct the fields marked below.'}`);
      } else {
        setProblem(describeError(error, 'create the subscription'));
      }
    } finally {
      setBusy(false);
    }
  };

  const eventErrors = messagesAt(fields, 'events');
  return (
    <section class="card" aria-labelledby="create-webhook-heading">
      <h2 id="create-webhook-heading">Create a subscription</h2>
      <form onSubmit={submit} noValidate>
        <div class="grid">
          <Field id="webhook-name" label="Name" errors={messagesAt(fields, 'name')}>
            {(describedBy, invalid) => (
              <input id="webhook-name" value={form.name} maxLength={100} aria-describedby={describedBy} aria-invalid={invalid} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} />
            )}
          </Field>
          <Field id="webhook-url" label="URL" errors={messagesAt(fields, 'url')} hint="Where events are POSTed: an https URL of your backend.">
            {(describedBy, invalid) => (
              <input
                id="webhook-url"
                type="url"
                value={form.url}
                spellcheck={false}
                aria-describedby={describedBy}
                aria-invalid={invalid}
                onInput={(e) => setForm({ ...form, url: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field id="webhook-secret" label="Secret (optional)" errors={messagesAt(fields, 'secret')} hint="At least 16 characters. Deliveries are signed with it; it is never shown again.">
            {(describedBy, invalid) => (
              <input
                id="webhook-secret"
                type="password"
                autoComplete="off"
                value={form.secret}
                aria-describedby={describedBy}
                aria-invalid={invalid}
                onInput={(e) => setForm({ ...form, secret: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        <fieldset class={eventErrors.length ? 'invalid' : ''} aria-describedby={eventErrors.length ? 'events-errors' : undefined}>
          <legend>Events</legend>
          <div class="checks">
            <label class="check">
              <input type="checkbox" id="event-*" checked={all} onChange={(e) => toggle('*', e.currentTarget.checked)} /> All events (<code>*</code>)
            </label>
            {WEBHOOK_EVENTS.map((event) => (
              <label class="check" key={event}>
                <input type="checkbox" checked={all || form.events.includes(event)} disabled={all} onChange={(e) => toggle(event, e.currentTarget.checked)} /> <code>{event}</code>
              </label>
            ))}
          </div>
          {eventErrors.length > 0 && (
            <ul class="field-errors" id="events-errors">
              {eventErrors.map((message) => (
                <li key={message}>{message}</li>
              ))}
            </ul>
          )}
        </fieldset>
        <label class="check">
          <input type="checkbox" checked={form.includeResource} onChange={(e) => setForm({ ...form, includeResource: e.currentTarget.checked })} /> Include the user or
          account in each event (never its SSN, birth date or address)
        </label>
        {problem && <ErrorMessage>{problem}</ErrorMessage>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create subscription'}
        </button>
      </form>
    </section>
  );
}
