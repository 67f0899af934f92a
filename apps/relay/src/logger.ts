import type { Logger } from '@sluice/core';
import { pino } from 'pino';
import { redactString, redactValue } from './redact.js';

export interface RelayLogger extends Logger {
  fatal(obj: object, msg?: string): void;
  flush(): void;
}

/**
 * pino JSON lines on stdout (fd 2 when stdout carries events), at `level` and above. Every string
 * that reaches a line goes through the secret scrubber: the merged object and `err` (message,
 * stack, causes), the message and its format arguments, and a child's bindings, which pino
 * serializes once at `child()` without the `log` formatter (and without `formatters.bindings`,
 * which it resets for children).
 */
export function createLogger(level: string, destination: 1 | 2 | pino.DestinationStream = 1): RelayLogger {
  const logger = pino(
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
          // The first argument (the merge object) is scrubbed by the `log` formatter.
          const redacted = args.map((a, i) =>
            typeof a === 'string' ? redactString(a) : i === 0 ? a : redactValue(a),
          );
          return method.apply(this, redacted as Parameters<typeof method>);
        },
      },
    },
    typeof destination === 'number' ? pino.destination(destination) : destination,
  );
  return scrubChildBindings(logger) as unknown as RelayLogger;
}

/**
 * Children inherit `child` from their parent through the prototype, so each one gets its own
 * wrapper around pino's original `child` called on itself: otherwise `a.child(x).child(y)` would
 * run `a`'s wrapper and build `a.child(y)`, dropping `x`.
 */
function scrubChildBindings<L extends object>(logger: L): L {
  type Child = (this: object, bindings: pino.Bindings, options?: object) => object;
  const pinoChild = (logger as unknown as { child: Child }).child;
  const wrap = <I extends object>(instance: I): I => {
    (instance as unknown as { child: Child }).child = (bindings, options) =>
      wrap(pinoChild.call(instance, redactValue(bindings) as pino.Bindings, options));
    return instance;
  };
  return wrap(logger);
}
