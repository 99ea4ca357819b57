// The webhook receiver helper: a delivery's signatures checked over its raw body, and its event typed.
import { timingSafeEqual } from 'node:crypto';
import type { Account, User } from './client.js';
import { argyleSignature, standardWebhookSignature } from './signing.js';

/** A user as events carry it (`include_resource`): the API's User without its SSN, birth date and address. */
export type WebhookUser = Omit<User, 'ssn' | 'birth_date' | 'address'>;

type UserEventName = 'users.created' | 'users.updated' | 'users.removed';
type AccountEventName = 'accounts.added' | 'accounts.connected' | 'accounts.failed' | 'accounts.updated' | 'accounts.removed';

/** `{"event", "name" (the subscription's), "data": {"user", "resource"?}}`: the user at that change. */
export type UserEvent = { [E in UserEventName]: { event: E; name: string; data: { user: string; resource?: WebhookUser } } }[UserEventName];
/** `{"event", "name", "data": {"user", "account", "resource"?}}`: the account at that change. */
export type AccountEvent = {
  [E in AccountEventName]: { event: E; name: string; data: { user: string; account: string; resource?: Account } };
}[AccountEventName];
export type WebhookEvent = UserEvent | AccountEvent;
export type WebhookEventName = WebhookEvent['event'];

export type WebhookScheme = 'argyle' | 'standard';

export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, in seconds (either way). Default 300, as Standard Webhooks libraries. */
  tolerance?: number;
  /**
   * The signatures that must be present and hold. Default both, which the service always sends for a subscription with a
   * secret: X-Argyle-Signature alone does not cover the timestamp, so a recorded delivery could be replayed.
   */
  schemes?: readonly WebhookScheme[];
  /** The current time, in milliseconds since the epoch (tests). */
  now?: number;
}

export type WebhookVerificationReason = 'missing_signature' | 'bad_signature' | 'stale_timestamp' | 'bad_payload';

/** A delivery that must not be trusted: answer it 4xx (400 or 401) and do nothing with it. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';

  constructor(
    readonly reason: WebhookVerificationReason,
    message: string,
  ) {
    super(message);
  }
}

/** Node's `req.headers`, a fetch `Headers`, or any object of header names (any case). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : headers[key];
  return Array.isArray(value) ? value[0] : value;
}

function equal(actual: string, expected: string): boolean {
  const [a, b] = [Buffer.from(actual), Buffer.from(expected)];
  return a.length === b.length && timingSafeEqual(a, b);
}

function verifyArgyle(body: Buffer, headers: WebhookHeaders, secret: string): void {
  const signature = header(headers, 'x-argyle-signature');
  if (signature === undefined) throw new WebhookVerificationError('missing_signature', 'No X-Argyle-Signature header');
  if (!equal(signature.toLowerCase(), argyleSignature(secret, body))) throw new WebhookVerificationError('bad_signature', 'X-Argyle-Signature does not match the body');
}

function verifyStandard(body: Buffer, headers: WebhookHeaders, secret: string, toleranceSeconds: number, now: number): void {
  const [id, timestamp, signatures] = ['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => header(headers, name));
  if (id === undefined || timestamp === undefined || signatures === undefined) {
    throw new WebhookVerificationError('missing_signature', 'No webhook-id, webhook-timestamp or webhook-signature header');
  }
  const seconds = /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : NaN;
  if (!(Math.abs(now / 1000 - seconds) <= toleranceSeconds)) {
    throw new WebhookVerificationError('stale_timestamp', `webhook-timestamp ${timestamp} is not within ${toleranceSeconds} s of now`);
  }
  const expected = standardWebhookSignature(secret, id, timestamp, body);
  // A space-separated list ("v1,<base64> v1,<base64>" while a secret rotates): one v1 signature must hold.
  const holds = signatures.split(' ').some((entry) => entry.startsWith('v1,') && equal(entry.slice(3), expected));
  if (!holds) throw new WebhookVerificationError('bad_signature', 'webhook-signature does not match the body');
}

function isEvent(value: unknown): value is WebhookEvent {
  const event = value as Partial<WebhookEvent> | null;
  return (
    typeof event === 'object' && event !== null && typeof event.event === 'string' && typeof event.name === 'string' &&
    typeof event.data === 'object' && event.data !== null && typeof event.data.user === 'string'
  );
}

/**
 * The event of a delivery whose signatures hold for `secret` (the subscription's, as given when subscribing), checked
 * over `rawBody` exactly as received: parse nothing before. Throws WebhookVerificationError otherwise.
 * The delivery's `webhook-id` header is the same on every attempt: de-duplicate on it (delivery is at least once).
 */
export function verifyWebhook(rawBody: string | Uint8Array, headers: WebhookHeaders, secret: string, options: VerifyOptions = {}): WebhookEvent {
  const { tolerance = 300, schemes = ['argyle', 'standard'], now = Date.now() } = options;
  if (schemes.length === 0) throw new TypeError('verifyWebhook: schemes names no signature to check');
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  if (schemes.includes('argyle')) verifyArgyle(body, headers, secret);
  if (schemes.includes('standard')) verifyStandard(body, headers, secret, tolerance, now);
  let event: unknown;
  try {
    event = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WebhookVerificationError('bad_payload', 'The body is not JSON');
  }
  if (!isEvent(event)) throw new WebhookVerificationError('bad_payload', 'The body is not a webhook event');
  return event;
}
