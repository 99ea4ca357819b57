// Webhook subscriptions (API keys, tenant-scoped) and their deliveries.
import { timestampNow } from '../clock.js';
import type { WebhooksTable } from '../db/database.js';
import { addFieldError, errors, type FieldErrors } from '../errors.js';
import type { CursorCodec } from '../paging/cursor.js';
import { walkPage, type PageQuery } from '../paging/keyset.js';
import type { PiiCipher } from '../pii/pii.cipher.js';
import { canonicalUserId, newId } from '../users/users.ids.js';
import { urlProblem } from './webhooks.address.js';
import { WebhooksRepository, type DeliveryRow } from './webhooks.repository.js';
import { WEBHOOK_EVENTS } from './webhooks.events.js';
import type { CreateWebhookBody, Delivery, Webhook } from './webhooks.schemas.js';

const KNOWN_EVENTS: ReadonlySet<string> = new Set([...WEBHOOK_EVENTS, '*']);

function toWebhook(row: WebhooksTable): Webhook {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    events: JSON.parse(row.events) as string[],
    config: { include_resource: row.include_resource === 1 },
    has_secret: row.secret !== null,
    created_at: row.created_at,
  };
}

function toDelivery(row: DeliveryRow): Delivery {
  return {
    id: row.id,
    webhook: row.webhook_id,
    event: row.event,
    user: row.user_id,
    status: row.status,
    attempts: row.attempts,
    last_response_code: row.last_status_code,
    last_error: row.last_error,
    next_attempt_at: row.status === 'pending' ? row.next_attempt_at : null,
    created_at: row.created_at,
    delivered_at: row.delivered_at,
  };
}

interface Page<T> {
  next: string | null;
  previous: string | null;
  results: T[];
}

export class WebhooksService {
  constructor(
    private readonly repo: WebhooksRepository,
    private readonly cipher: PiiCipher,
    private readonly cursors: CursorCodec,
    private readonly allowPrivate: boolean,
  ) {}

  async create(clientId: string, body: CreateWebhookBody): Promise<Webhook> {
    const problems: FieldErrors = {};
    body.events.forEach((event, i) => {
      if (!KNOWN_EVENTS.has(event)) addFieldError(problems, ['events', String(i)], `"${event}" is not a valid choice.`);
    });
    const urlError = urlProblem(body.url, this.allowPrivate);
    if (urlError) addFieldError(problems, ['url'], urlError);
    if (Object.keys(problems).length > 0) throw errors.validation(problems);
    const { id, createdAt } = newId();
    const row: WebhooksTable = {
      client_id: clientId,
      id,
      name: body.name,
      url: body.url,
      events: JSON.stringify([...new Set(body.events)]),
      secret: body.secret === undefined ? null : this.cipher.encrypt(body.secret, WebhooksRepository.secretContext(clientId, id)),
      include_resource: body.config?.include_resource ? 1 : 0,
      created_at: createdAt,
    };
    await this.repo.insertSubscription(row);
    return toWebhook(row);
  }

  async list(clientId: string, query: PageQuery, baseUrl: string): Promise<Page<Webhook>> {
    const { next, previous, rows } = await walkPage(this.repo.subscriptionPages, this.cursors, clientId, 'webhooks', { ...query, filters: {} }, (c) => `${baseUrl}/v2/webhooks?cursor=${c}`);
    return { next, previous, results: rows.map(toWebhook) };
  }

  /** Every subscription of the client (the CLI), oldest first. */
  async all(clientId: string): Promise<Webhook[]> {
    return (await this.repo.allSubscriptions(clientId)).map(toWebhook);
  }

  /** The latest deliveries of a subscription (the CLI), newest first. */
  async latestDeliveries(clientId: string, rawId: string, limit: number, status?: string): Promise<Delivery[]> {
    const webhook = await this.findRow(clientId, rawId);
    return (await this.repo.latestDeliveries(clientId, webhook.id, limit, status)).map(toDelivery);
  }

  async get(clientId: string, rawId: string): Promise<Webhook> {
    return toWebhook(await this.findRow(clientId, rawId));
  }

  async delete(clientId: string, rawId: string): Promise<void> {
    const id = canonicalUserId(rawId);
    if (id === undefined || !(await this.repo.deleteSubscription(clientId, id))) throw errors.notFound();
  }

  async deliveries(clientId: string, rawId: string, query: PageQuery, baseUrl: string): Promise<Page<Delivery>> {
    const webhook = await this.findRow(clientId, rawId);
    const { next, previous, rows } = await walkPage(
      this.repo.deliveryPages,
      this.cursors,
      clientId,
      `deliveries ${webhook.id}`,
      { ...query, filters: { webhook: webhook.id } },
      (c) => `${baseUrl}/v2/webhooks/${webhook.id}/deliveries?cursor=${c}`,
    );
    return { next, previous, results: rows.map(toDelivery) };
  }

  /** Makes a delivery that failed (or still waits) due now, with its attempts counted afresh; a delivered one is 409. */
  async retry(clientId: string, rawId: string, rawDelivery: string): Promise<Delivery> {
    const webhook = await this.findRow(clientId, rawId);
    const id = canonicalUserId(rawDelivery);
    const delivery = id === undefined ? undefined : await this.repo.findDelivery(clientId, webhook.id, id);
    if (!delivery) throw errors.notFound();
    if (!(await this.repo.retryDelivery({ clientId, webhookId: webhook.id, id: delivery.id }))) {
      throw errors.conflict('This delivery was delivered already.');
    }
    return toDelivery({ ...delivery, status: 'pending', attempts: 0, next_attempt_at: timestampNow() });
  }

  private async findRow(clientId: string, rawId: string): Promise<WebhooksTable> {
    const id = canonicalUserId(rawId);
    const row = id === undefined ? undefined : await this.repo.findSubscription(clientId, id);
    if (!row) throw errors.notFound();
    return row;
  }
}
