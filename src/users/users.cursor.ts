// Opaque, tamper-proof paging cursors: the position, direction, limit and filter of a walk, sealed by HMAC.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { errors } from '../errors.js';

export interface CursorState {
  /** 'next' reads ids after `key` ascending, 'previous' reads ids before `key`. */
  direction: 'next' | 'previous';
  key: string;
  /** For 'previous' only: include `key` itself (used from an empty page past the end). */
  inclusive: boolean;
  limit: number;
  externalId: string | undefined;
}

interface Sealed {
  d: 'n' | 'p';
  k: string;
  i?: 1;
  l: number;
  e?: string;
}

export class CursorCodec {
  constructor(private readonly key: Buffer) {}

  private mac(clientId: string, payload: string): Buffer {
    return createHmac('sha256', this.key).update(clientId).update('\n').update(payload).digest().subarray(0, 16);
  }

  encode(clientId: string, state: CursorState): string {
    const sealed: Sealed = { d: state.direction === 'next' ? 'n' : 'p', k: state.key, l: state.limit };
    if (state.inclusive) sealed.i = 1;
    if (state.externalId !== undefined) sealed.e = state.externalId;
    const payload = Buffer.from(JSON.stringify(sealed)).toString('base64url');
    return `${payload}.${this.mac(clientId, payload).toString('base64url')}`;
  }

  /** Throws "Invalid cursor" for anything this service (for this client) did not issue. */
  decode(clientId: string, cursor: string): CursorState {
    const [payload, tag, extra] = cursor.split('.');
    if (!payload || !tag || extra !== undefined) throw errors.invalidCursor();
    const given = Buffer.from(tag, 'base64url');
    const expected = this.mac(clientId, payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw errors.invalidCursor();
    const sealed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Sealed;
    return {
      direction: sealed.d === 'n' ? 'next' : 'previous',
      key: sealed.k,
      inclusive: sealed.i === 1,
      limit: sealed.l,
      externalId: sealed.e,
    };
  }
}
