// The two signatures of a webhook delivery, pure functions of (secret, bytes): the service signs with them and
// verifyWebhook checks with them. The secret is used as its UTF-8 bytes.
import { createHmac } from 'node:crypto';

/** X-Argyle-Signature (the real service's): the hex HMAC-SHA512 of the body. */
export function argyleSignature(secret: string, body: string | Uint8Array): string {
  return createHmac('sha512', Buffer.from(secret, 'utf8')).update(body).digest('hex');
}

/**
 * Standard Webhooks v1: the base64 HMAC-SHA256 of "id.timestamp.body", without its "v1," prefix. Standard Webhooks
 * libraries take the secret base64-encoded: `new Webhook(Buffer.from(secret).toString('base64'))`.
 */
export function standardWebhookSignature(secret: string, id: string, timestampSeconds: number | string, body: string | Uint8Array): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${id}.${timestampSeconds}.`).update(body).digest('base64');
}

/** The headers of `body` sent as delivery `id` at `timestampSeconds`, signed with `secret` both ways. */
export function signatureHeaders(secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> {
  return {
    'x-argyle-signature': argyleSignature(secret, body),
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${standardWebhookSignature(secret, id, timestampSeconds, body)}`,
  };
}
