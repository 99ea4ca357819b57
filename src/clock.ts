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

/** The last second isoMicros formatted, and its text up to the fraction ("2023-03-08T17:04:23."). */
let formattedSecond = Number.NaN;
let secondText = '';

/**
 * ISO 8601 UTC with microseconds, the API's timestamp form: 2023-03-08T17:04:23.345612Z. A create takes several of
 * the same second (ids, created_at, the outbox), so the date and time of day are formatted once per second.
 */
export function isoMicros(micros: number): string {
  const second = Math.floor(micros / 1_000_000);
  if (second !== formattedSecond) {
    secondText = new Date(second * 1000).toISOString().slice(0, 20);
    formattedSecond = second;
  }
  return `${secondText}${String(micros - second * 1_000_000).padStart(6, '0')}Z`;
}

/** The instant of a time in the API's form (isoMicros's inverse), or undefined for any other text or one before 1970. */
export function parseIsoMicros(text: string): number | undefined {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(text)) return undefined;
  const millis = Date.parse(`${text.slice(0, 23)}Z`);
  if (!(millis >= 0)) return undefined;
  const micros = millis * 1000 + Number(text.slice(23, 26));
  // Date.parse rolls 2023-02-30 over to March: only a time that reads back the same is one.
  return isoMicros(micros) === text ? micros : undefined;
}

/** The current time in the API's form. */
export const timestampNow = (): string => isoMicros(nowMicros());
