// The API's objects as the console reads them: the generated client's types (from the OpenAPI document the routes
// make), so the console cannot drift from the API. Types only: nothing of the client is bundled.
export type { Account, ApiKey, Delivery, Page, User, Webhook } from '../../clients/typescript/src/index';

/** The events a subscription can name: the service's own list. */
export { WEBHOOK_EVENTS } from '../../src/webhooks/webhooks.events';
