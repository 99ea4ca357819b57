// Field-level encryption of personal data at rest: AES-256-GCM, key id in every ciphertext so keys rotate.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { publicRandomBytes } from '../random.js';

export interface PiiKey {
  id: string;
  key: Buffer;
}

export class PiiKeyError extends Error {}

/** A ciphertext names a key this process was not given: the data is fine, the configuration is short of a key. */
export class PiiKeyMissingError extends PiiKeyError {
  constructor(readonly keyId: string) {
    super(`cannot decrypt personal data: PII key "${keyId}" is not in this instance's PII_KEYS`);
  }
}

/** A stored ciphertext that does not decrypt under its own key: damaged, truncated or moved. */
export class PiiCorruptError extends Error {
  constructor(readonly record = '') {
    super(`cannot decrypt personal data${record ? ` of ${record}` : ''}: the ciphertext is damaged`);
  }
}

const FORMAT = 'v1';
const TAG_BYTES = 16;

/** Parses PII_KEYS: `KEY_ID:BASE64_OF_32_BYTES[,KEY_ID:...]`; the first encrypts, the rest only decrypt. */
export function parsePiiKeys(text: string, source = 'PII_KEYS'): PiiKey[] {
  const keys = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const [id, encoded, extra] = entry.split(':');
      if (!id || !encoded || extra !== undefined || !/^[A-Za-z0-9_-]{1,32}$/.test(id)) {
        throw new PiiKeyError(`${source} entries must look like KEY_ID:BASE64_OF_32_BYTES (key id: letters, digits, _ or -)`);
      }
      const key = Buffer.from(encoded, 'base64');
      if (key.length !== 32) throw new PiiKeyError(`${source} key "${id}" must be 32 bytes, base64-encoded`);
      return { id, key };
    });
  if (keys.length === 0) throw new PiiKeyError(`${source} holds no key`);
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new PiiKeyError(`${source} repeats a key id`);
  return keys;
}

/** A new key id: `k`, today's date and a random suffix, so two keys made on one day never share an id. */
const newPiiKeyId = (): string =>
  `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(3).toString('hex')}`;

export function newPiiKeyEntry(id = newPiiKeyId()): string {
  return `${id}:${randomBytes(32).toString('base64')}`;
}

export class PiiCipher {
  private readonly byId: Map<string, Buffer>;
  private readonly primary: PiiKey;

  constructor(keys: PiiKey[]) {
    if (!keys[0]) throw new PiiKeyError('no PII key');
    this.primary = keys[0];
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  get primaryKeyId(): string {
    return this.primary.id;
  }

  /** Every key id this cipher decrypts with, the encrypting one first. */
  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  /**
   * `context` is bound as associated data (e.g. tenant, user and column), so a ciphertext
   * copied into another row or column does not decrypt.
   */
  encrypt(plaintext: string, context: string): string {
    const iv = publicRandomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.primary.key, iv).setAAD(Buffer.from(context));
    const body = cipher.update(plaintext, 'utf8');
    cipher.final(); // GCM is a stream cipher: nothing is held back
    return `${FORMAT}.${this.primary.id}.${iv.toString('base64url')}.${body.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
  }

  decrypt(ciphertext: string, context: string): string {
    const [format, keyId, iv, body, tag] = ciphertext.split('.');
    if (format !== FORMAT || keyId === undefined || iv === undefined || body === undefined || tag === undefined) {
      throw new PiiCorruptError();
    }
    const key = this.byId.get(keyId);
    if (!key) throw new PiiKeyMissingError(keyId);
    const tagBytes = Buffer.from(tag, 'base64url');
    // GCM accepts tags cut as short as 4 bytes unless told otherwise: a forged short tag is far easier to hit.
    if (tagBytes.length !== TAG_BYTES) throw new PiiCorruptError();
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES })
        .setAAD(Buffer.from(context))
        .setAuthTag(tagBytes);
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new PiiCorruptError();
    }
  }

  /** Whether a ciphertext was made with a key other than the one that encrypts now. */
  isStale(ciphertext: string): boolean {
    return ciphertext.split('.', 2)[1] !== this.primary.id;
  }
}
