// The two signatures of a delivery: the real service's X-Argyle-Signature and Standard Webhooks v1.
import { createHmac } from 'node:crypto';

/**
 * Headers for `body` sent as delivery `id` at `timestampSeconds`, signed with `secret` (its UTF-8 bytes):
 * X-Argyle-Signature = hex HMAC-SHA512 of the body; webhook-signature = "v1," + base64 HMAC-SHA256 of
 * "id.timestamp.body" (Standard Webhooks; its libraries take the secret base64-encoded).
 */
export function signatureHeaders(secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = Buffer.from(secret, 'utf8');
  return {
    'x-argyle-signature': createHmac('sha512', key).update(body).digest('hex'),
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`,
  };
}
