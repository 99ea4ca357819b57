// User ids are UUIDv7: time-ordered, so id order is creation order and paging can key on id.
import { v7 } from 'uuid';

/** A UUID in canonical lower-case form (any version: the seed's own ids are not RFC variants). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A new id and its creation time (ISO 8601 UTC, microseconds); the id's first 48 bits hold the same millisecond. */
export function newUserId(): { id: string; createdAt: string } {
  const id = v7();
  const millis = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  const micros = Math.floor(((performance.timeOrigin + performance.now()) * 1000) % 1000);
  const iso = new Date(millis).toISOString();
  return { id, createdAt: `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z` };
}

/** The canonical (lower-case) form of a user id, or undefined when it cannot be one. */
export function canonicalUserId(raw: string): string | undefined {
  const id = raw.toLowerCase();
  return UUID.test(id) ? id : undefined;
}
