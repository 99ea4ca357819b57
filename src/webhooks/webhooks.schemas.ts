// Webhook subscriptions and their deliveries, as the API shows them (the events they can name: webhooks.events.ts).
import { Type, type Static } from 'typebox';
import { pageQuerySchema } from '../http/schemas.js';

const timestamp = (description: string) => Type.String({ format: 'date-time', description });
const nullableString = (description: string) => Type.Unsafe<string | null>({ type: ['string', 'null'], description });

export const WebhookSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'Unique ID of the subscription.' }),
    name: Type.String({ description: 'A label for the subscription.' }),
    url: Type.String({ format: 'uri', description: 'Where events are POSTed.' }),
    events: Type.Array(Type.String(), { description: 'The events sent (`*` for all).' }),
    config: Type.Object({ include_resource: Type.Boolean() }, { additionalProperties: false }),
    has_secret: Type.Boolean({ description: 'Whether deliveries are signed. The secret itself is never returned after creation.' }),
    created_at: timestamp('When the subscription was created.'),
  },
  { $id: 'Webhook', additionalProperties: false },
);
export type Webhook = Static<typeof WebhookSchema>;

export const CreateWebhookBodySchema = Type.Object(
  {
    events: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 20, description: 'Event names, or `["*"]` for all.' }),
    name: Type.String({ minLength: 1, maxLength: 100 }),
    url: Type.String({ minLength: 1, maxLength: 2048, description: '`https` (`http` and private addresses only with WEBHOOK_ALLOW_PRIVATE=true).' }),
    secret: Type.Optional(
      Type.String({
        minLength: 16,
        maxLength: 256,
        description: 'Signs every delivery (X-Argyle-Signature and Standard Webhooks). Write-only: never returned.',
      }),
    ),
    config: Type.Optional(
      Type.Object({ include_resource: Type.Optional(Type.Boolean({ description: 'Send the object (without SSN, birth date or address) in `data.resource`.' })) }),
    ),
  },
  { additionalProperties: true },
);
export type CreateWebhookBody = Static<typeof CreateWebhookBodySchema>;

export const WebhookIdParamsSchema = Type.Object({ id: Type.String({ format: 'uuid', description: 'ID of the subscription.' }) });
export const DeliveryParamsSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'ID of the subscription.' }),
  delivery: Type.String({ format: 'uuid', description: 'ID of the delivery.' }),
});

export const DeliverySchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'ID of the delivery; also its `webhook-id` header, the same on every attempt.' }),
    webhook: Type.String({ format: 'uuid' }),
    event: Type.String(),
    user: Type.String({ format: 'uuid' }),
    status: Type.Unsafe<'pending' | 'delivered' | 'failed'>({ type: 'string', enum: ['pending', 'delivered', 'failed'] }),
    attempts: Type.Integer({ description: 'Attempts made so far.' }),
    last_response_code: Type.Unsafe<number | null>({ type: ['integer', 'null'], description: 'HTTP status of the last attempt; null when none answered.' }),
    last_error: nullableString('Why the last attempt failed, when it did.'),
    next_attempt_at: Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date-time', description: 'When the next attempt is due; null once delivered or failed.' }),
    created_at: timestamp('When the event happened.'),
    delivered_at: Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'date-time' }),
  },
  { $id: 'Delivery', additionalProperties: false },
);
export type Delivery = Static<typeof DeliverySchema>;

export const ListQuerySchema = pageQuerySchema('objects', {});
