import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The service's structured logger. JSON lines to stderr (stdout stays free for command
 * output such as `replay` summaries); level from PORTCULLIS_LOG_LEVEL, default `info`.
 */
export function createLogger(
  name = 'portcullis',
  level = process.env.PORTCULLIS_LOG_LEVEL ?? 'info',
): Logger {
  return pino({ name, level }, pino.destination(2));
}

/** A logger that drops everything: for tests and pure callers. */
export const silentLogger: Logger = pino({ level: 'silent' });
