// Random bytes for values that are public once used: IVs and ids, never keys or secrets (those use randomBytes).
import { randomBytes } from 'node:crypto';

/**
 * Each call of randomBytes is a trip into OpenSSL that costs ~4 µs here for 12 bytes, as much as the AES-GCM
 * encryption it serves; the same CSPRNG filling 4 KiB at a time costs ~0.2 µs per draw (Node's randomUUID keeps
 * such a pool too). A full pool is replaced by a new buffer, never refilled in place, so every view handed out
 * keeps its own bytes and no two draws share any.
 */
const POOL_BYTES = 4096;

let pool = Buffer.alloc(0);
let offset = 0;

/** `size` (at most 4 KiB) fresh random bytes: a view the caller must not write to. */
export function publicRandomBytes(size: number): Buffer {
  if (offset + size > pool.length) {
    pool = randomBytes(Math.max(POOL_BYTES, size));
    offset = 0;
  }
  const bytes = pool.subarray(offset, offset + size);
  offset += size;
  return bytes;
}
