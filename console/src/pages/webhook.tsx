// One webhook subscription and its deliveries, with a retry for those not delivered.
import { useState } from 'preact/hooks';
import { api, ApiError, apiPath } from '../api';
import { Breakable, Empty, ErrorMessage, Link, Loading, Notice, Pager, PageTitle, Time } from '../components';
import { describeDeliveryError } from '../delivery-errors';
import { describeError, orDash } from '../format';
import { useLoad } from '../hooks';
import type { Delivery, Page, Webhook } from '../types';

export function WebhookPage({ id }: { id: string }) {
  const webhook = useLoad((signal) => api.get<Webhook>(`/v2/webhooks/${encodeURIComponent(id)}`, { signal }), [id]);
  return (
    <>
      <p class="breadcrumb">
        <Link to="/webhooks">← Webhooks</Link>
      </p>
      {webhook.status === 'loading' && (
        <>
          <PageTitle title="Subscription">Subscription</PageTitle>
          <Loading>Loading the subscription…</Loading>
        </>
      )}
      {webhook.status === 'error' &&
        (webhook.error instanceof ApiError && webhook.error.status === 404 ? (
          <>
            <PageTitle title="Subscription not found">Subscription not found</PageTitle>
            <div class="error" role="alert">
              <p>
                No subscription with the ID <code>{id}</code> was found for this client. It may have been deleted: see the{' '}
                <Link to="/webhooks">list of subscriptions</Link>.
              </p>
            </div>
          </>
        ) : (
          <>
            <PageTitle title="Subscription">Subscription</PageTitle>
            <ErrorMessage onRetry={webhook.reload}>{describeError(webhook.error, 'load the subscription')}</ErrorMessage>
          </>
        ))}
      {webhook.status === 'ok' && (
        <>
          <PageTitle title={`Subscription ${webhook.data.name}`}>Subscription {webhook.data.name}</PageTitle>
          <section class="card" aria-labelledby="subscription-heading">
            <h2 id="subscription-heading">Details</h2>
            <dl class="details">
              <dt>URL</dt>
              <dd class="url">
                <Breakable text={webhook.data.url} />
              </dd>
              <dt>Events</dt>
              <dd>{webhook.data.events.join(', ')}</dd>
              <dt>Resource in events</dt>
              <dd>{webhook.data.config.include_resource ? 'Yes' : 'No'}</dd>
              <dt>Signed</dt>
              <dd>{webhook.data.has_secret ? 'Yes' : 'No'}</dd>
              <dt>Created</dt>
              <dd>
                <Time value={webhook.data.created_at} />
              </dd>
            </dl>
          </section>
          <Deliveries webhookId={webhook.data.id} />
        </>
      )}
    </>
  );
}

const STATUS_LABELS: Record<Delivery['status'], string> = { pending: 'Pending', delivered: 'Delivered', failed: 'Failed' };

function Deliveries({ webhookId }: { webhookId: string }) {
  // Newest first: support looks for what just happened.
  const [path, setPath] = useState(`/v2/webhooks/${webhookId}/deliveries?ordering=-created_at&limit=50`);
  const deliveries = useLoad((signal) => api.get<Page<Delivery>>(path, { signal }), [path]);
  const [notice, setNotice] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [retrying, setRetrying] = useState<string | null>(null);

  const retry = async (delivery: Delivery) => {
    if (deliveries.status !== 'ok') return;
    setRetrying(delivery.id);
    setNotice(null);
    setProblem(null);
    try {
      const { data } = await api.call<Delivery>('POST', `/v2/webhooks/${webhookId}/deliveries/${delivery.id}/retry`);
      deliveries.set({ ...deliveries.data, results: deliveries.data.results.map((d) => (d.id === data.id ? data : d)) });
      setNotice(`The ${delivery.event} delivery will be sent again within moments. Refresh to see how it went.`);
    } catch (error) {
      setProblem(
        error instanceof ApiError && error.status === 409
          ? 'That delivery has been delivered already: there is nothing to retry. Refresh to see its status.'
          : describeError(error, 'retry the delivery'),
      );
    } finally {
      setRetrying(null);
    }
  };

  return (
    <section class="card" aria-labelledby="deliveries-heading">
      <div class="title-row">
        <h2 id="deliveries-heading">Deliveries</h2>
        <button type="button" onClick={deliveries.reload} disabled={deliveries.status === 'loading'}>
          Refresh
        </button>
      </div>
      {notice && <Notice>{notice}</Notice>}
      {problem && <ErrorMessage>{problem}</ErrorMessage>}
      {deliveries.status === 'loading' && <Loading>Loading deliveries…</Loading>}
      {deliveries.status === 'error' && <ErrorMessage onRetry={deliveries.reload}>{describeError(deliveries.error, 'load the deliveries')}</ErrorMessage>}
      {deliveries.status === 'ok' && deliveries.data.results.length === 0 && (
        <Empty>
          <p>No events yet: one is sent for each change to a user or an account, of the kinds this subscription names.</p>
        </Empty>
      )}
      {deliveries.status === 'ok' && deliveries.data.results.length > 0 && (
        <>
          <table class="stack">
            <caption class="visually-hidden">Deliveries of this subscription, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last response</th>
                <th scope="col">Next attempt</th>
                <th scope="col">User</th>
                <th scope="col">Happened</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {deliveries.data.results.map((delivery) => (
                <tr key={delivery.id}>
                  <td data-label="Event">
                    <code>{delivery.event}</code>
                  </td>
                  <td data-label="Status">
                    <span class={`badge ${delivery.status}`}>{STATUS_LABELS[delivery.status]}</span>
                  </td>
                  <td data-label="Attempts">{delivery.attempts}</td>
                  <td data-label="Last response">
                    {delivery.last_response_code === null && delivery.last_error ? (
                      // No answer at all: what went wrong is the whole story.
                      describeDeliveryError(delivery.last_error)
                    ) : (
                      <>
                        {orDash(delivery.last_response_code)}
                        {delivery.last_error && <span class="muted"> ({describeDeliveryError(delivery.last_error)})</span>}
                      </>
                    )}
                  </td>
                  <td data-label="Next attempt">
                    <Time value={delivery.next_attempt_at} />
                  </td>
                  <td data-label="User">
                    <Link to={`/users/${delivery.user}`} class="id short-id" aria-label={`User ${delivery.user}`} title={delivery.user}>
                      {`${delivery.user.slice(0, 8)}…`}
                    </Link>
                  </td>
                  <td data-label="Happened">
                    <Time value={delivery.created_at} />
                  </td>
                  <td data-label="Actions" class="actions-cell">
                    <div class="actions">
                      {delivery.status !== 'delivered' && (
                        <button type="button" class="small" disabled={retrying !== null} aria-label={`Retry the ${delivery.event} delivery`} onClick={() => retry(delivery)}>
                          {retrying === delivery.id ? 'Retrying…' : 'Retry'}
                        </button>
                      )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager label="Pages of deliveries" previous={deliveries.data.previous} next={deliveries.data.next} onPage={(link) => setPath(apiPath(link))} />
        </>
      )}
    </section>
  );
}
