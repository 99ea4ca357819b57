// Opaque paging cursors: the position, direction, limit, order and filters of a walk, sealed (AES-256-GCM) to one
// client and one list (a users cursor is not an accounts cursor).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { errors } from '../errors.js';
import { publicRandomBytes } from '../random.js';
import { deriveKey } from '../secrets.js';

export interface CursorState {
  /** 'next' reads the rows after `key` in the list's order, 'previous' the rows before it. */
  direction: 'next' | 'previous';
  key: string;
  /** Include `key` itself (used from an empty page past the end). */
  inclusive: boolean;
  limit: number;
  /** The list's order: 'asc' (oldest first) or 'desc' (newest first). */
  order: SortOrder;
  /** The list's filters (only those given), e.g. {external_id: "..."}. */
  filters: Filters;
}

export type Filters = Readonly<Record<string, string>>;
export type SortOrder = 'asc' | 'desc';

interface Sealed {
  d: 'n' | 'p';
  k: string;
  i?: 1;
  l: number;
  /** Set for newest first; absent (oldest first) in cursors issued before lists had an order. */
  o?: 'd';
  f?: Filters;
}

/** A cursor is base64url of VERSION ‖ IV ‖ ciphertext ‖ tag; the version and the client id are associated data. */
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const CIPHER = 'aes-256-gcm';

export class CursorCodec {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('a cursor key is 32 bytes');
  }

  /** The codec of a deployment: its key derived from USER_TOKEN_SECRET for cursors alone. */
  static forSecret(userTokenSecret: string): CursorCodec {
    return new CursorCodec(Buffer.from(deriveKey(userTokenSecret, 'cursor')));
  }

  /** `list` names the collection walked (e.g. "users"): a cursor decodes only for the same client and list. */
  encode(clientId: string, list: string, state: CursorState): string {
    const sealed: Sealed = { d: state.direction === 'next' ? 'n' : 'p', k: state.key, l: state.limit };
    if (state.inclusive) sealed.i = 1;
    if (state.order === 'desc') sealed.o = 'd';
    if (Object.keys(state.filters).length > 0) sealed.f = state.filters;
    const iv = publicRandomBytes(IV_BYTES);
    const cipher = createCipheriv(CIPHER, this.key, iv, { authTagLength: TAG_BYTES }).setAAD(associatedData(clientId, list));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(sealed), 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), iv, ciphertext, cipher.getAuthTag()]).toString('base64url');
  }

  /** Throws "Invalid cursor" for anything this service (for this client) did not issue. */
  decode(clientId: string, list: string, cursor: string): CursorState {
    const bytes = Buffer.from(cursor, 'base64url');
    // Node's decoder skips stray characters and unused bits: only the one canonical spelling is a cursor.
    if (bytes.toString('base64url') !== cursor || bytes.length <= 1 + IV_BYTES + TAG_BYTES || bytes[0] !== VERSION) {
      throw errors.invalidCursor();
    }
    const iv = bytes.subarray(1, 1 + IV_BYTES);
    const tag = bytes.subarray(bytes.length - TAG_BYTES);
    let sealed: Sealed;
    try {
      // authTagLength makes Node refuse a shorter tag, which it would otherwise accept.
      const decipher = createDecipheriv(CIPHER, this.key, iv, { authTagLength: TAG_BYTES })
        .setAAD(associatedData(clientId, list))
        .setAuthTag(tag);
      const plaintext = Buffer.concat([decipher.update(bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
      sealed = JSON.parse(plaintext.toString('utf8')) as Sealed;
    } catch {
      throw errors.invalidCursor();
    }
    return {
      direction: sealed.d === 'n' ? 'next' : 'previous',
      key: sealed.k,
      inclusive: sealed.i === 1,
      limit: sealed.l,
      order: sealed.o === 'd' ? 'desc' : 'asc',
      filters: sealed.f ?? {},
    };
  }
}

/** Binds a cursor to its format version, the client it was issued to and the list it walks. */
function associatedData(clientId: string, list: string): Buffer {
  return Buffer.concat([Buffer.of(VERSION), Buffer.from(`${clientId}\n${list}`, 'utf8')]);
}
