// User ids are UUIDv7: time-ordered, so id order is creation order and paging can key on id.
import { isoMicros, nowMicros } from '../clock.js';
import { publicRandomBytes } from '../random.js';

/** A UUID in canonical lower-case form (any version: the seed's own ids are not RFC variants). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const bytes = Buffer.alloc(16);

/**
 * A UUIDv7 for the instant `micros` (RFC 9562 §5.7, sub-millisecond precision by §6.2 method 3): 48 bits of
 * Unix milliseconds, then the fraction of the millisecond in the 12 bits of rand_a, then 62 random bits.
 * Distinct microseconds give distinct fractions (4096 steps per 1000 µs), so ids sort as their instants do.
 */
export function uuidv7At(micros: number): string {
  const millis = Math.floor(micros / 1000);
  const fraction = Math.floor(((micros % 1000) * 4096) / 1000);
  publicRandomBytes(8).copy(bytes, 8);
  bytes.writeUIntBE(millis, 0, 6);
  bytes.writeUInt16BE(0x7000 | fraction, 6);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A UUIDv7 in canonical form, as uuidv7At makes them. */
export const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Whether the UUIDv7 `id` could have been made for `micros` by uuidv7At: its millisecond and fraction bits are that instant's. */
export function isIdOfInstant(id: string, micros: number): boolean {
  const timeBits = (uuid: string) => uuid.slice(0, 18);
  return timeBits(id) === timeBits(uuidv7At(micros));
}

/** A new id (of a user, an account, ...) and its creation time (ISO 8601 UTC, microseconds), from one reading of the clock. */
export function newId(): { id: string; createdAt: string } {
  const micros = nowMicros();
  return { id: uuidv7At(micros), createdAt: isoMicros(micros) };
}

/** The canonical (lower-case) form of an id, or undefined when it cannot be one. */
export function canonicalUserId(raw: string): string | undefined {
  const id = raw.toLowerCase();
  return UUID.test(id) ? id : undefined;
}
