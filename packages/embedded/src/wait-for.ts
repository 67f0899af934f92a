import { setTimeout as delay } from 'node:timers/promises';
import { WaitTimeoutError } from './errors.js';

export interface WaitForOptions {
  /** Deadline for the condition; default 10 000 ms. */
  timeoutMs?: number;
  /** Pause between attempts; default 50 ms. */
  intervalMs?: number;
  /** What was awaited, for the error on deadline. */
  message?: string;
  /**
   * Errors that mean the condition can never hold (the server being waited for has exited):
   * thrown at once instead of waiting out the deadline.
   */
  fatal?: (err: unknown) => boolean;
}

/**
 * Polls `fn` until it returns a truthy value and resolves with it. A throw counts as "not yet"
 * (unless `fatal` says otherwise); the last one becomes the `cause` of the timeout error, which is
 * usually the real reason.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      if (opts.fatal?.(err)) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = opts.message ?? 'condition';
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new WaitTimeoutError(`Timed out after ${timeoutMs} ms waiting for ${what}${why}`, {
        cause: lastError,
      });
    }
    await delay(intervalMs);
  }
}
