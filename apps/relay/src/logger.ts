import type { Logger } from '@sluice/core';
import { pino } from 'pino';
import { redactString, redactValue } from './redact.js';

export interface RelayLogger extends Logger {
  fatal(obj: object, msg?: string): void;
  flush(): void;
}

/** pino JSON to stdout; every string that reaches a log line goes through the secret scrubber. */
export function createLogger(level: string, fd: 1 | 2 = 1) {
  const destination = pino.destination(fd);
  return pino(
    {
      level,
      base: { service: 'sluice' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactValue(obj) as Record<string, unknown>,
      },
      serializers: { err: (err: unknown) => redactValue(err) },
      hooks: {
        logMethod(args, method) {
          const redacted = args.map((a) => (typeof a === 'string' ? redactString(a) : a));
          return method.apply(this, redacted as Parameters<typeof method>);
        },
      },
    },
    destination,
  ) as unknown as RelayLogger;
}
