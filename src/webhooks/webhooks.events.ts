// The events a webhook subscription can name; no imports, so that the console's bundle can take the list as it is.
export const WEBHOOK_EVENTS = [
  'users.created',
  'users.updated',
  'users.removed',
  'accounts.added',
  'accounts.connected',
  'accounts.failed',
  'accounts.updated',
  'accounts.removed',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
