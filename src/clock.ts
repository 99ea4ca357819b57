// The service's one clock: microseconds since the epoch, strictly increasing within the process.
// Ids (UUIDv7) and timestamps are both taken from one reading of it, so id order and time order agree.

let last = 0;

/**
 * Now, in whole microseconds since the epoch: one reading of the high-resolution clock
 * (performance.timeOrigin + performance.now(), which is monotonic), never equal to or below the previous
 * reading in this process. Faster than one call per microsecond, it runs ahead by a microsecond per call.
 */
export function nowMicros(): number {
  const reading = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  last = reading > last ? reading : last + 1;
  return last;
}

/** ISO 8601 UTC with microseconds, the API's timestamp form: 2023-03-08T17:04:23.345612Z. */
export function isoMicros(micros: number): string {
  const millis = Math.floor(micros / 1000);
  return `${new Date(millis).toISOString().slice(0, 23)}${String(micros % 1000).padStart(3, '0')}Z`;
}

/** The current time in the API's form. */
export const timestampNow = (): string => isoMicros(nowMicros());
