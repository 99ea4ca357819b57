// pino with personal data and credentials redacted; pretty output only on a terminal.
import pino, { type Logger } from 'pino';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.ssn',
  '*.email',
  '*.phone_number',
  '*.first_name',
  '*.last_name',
  '*.address',
  '*.birth_date',
  '*.api_key_secret',
  '*.user_token',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = { level, redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' } };
  if (destination) return pino(options, destination);
  if (process.stdout.isTTY) return pino({ ...options, transport: { target: 'pino-pretty' } });
  return pino(options);
}
