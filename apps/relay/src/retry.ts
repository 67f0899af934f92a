import { isRetriable, type Logger } from '@sluice/core';

/**
 * Runs `fn` until it succeeds, retrying retriable failures with capped exponential backoff;
 * a permanent failure or an abort rejects at once.
 */
export async function retryRetriable<T>(
  what: string,
  fn: () => Promise<T>,
  opts: {
    logger: Logger;
    signal: AbortSignal;
    onRetry?: (err: unknown) => void;
    /** Turns a library's raw error into a classified one (e.g. a refused connection: retriable). */
    classify?: (err: unknown) => unknown;
  },
): Promise<T> {
  let delay = 500;
  for (;;) {
    try {
      return await fn();
    } catch (raw) {
      const err = opts.classify ? opts.classify(raw) : raw;
      if (!isRetriable(err) || opts.signal.aborted) throw err;
      opts.onRetry?.(err);
      opts.logger.warn({ err, retryInMs: delay }, `${what} failed; retrying`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        opts.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
      if (opts.signal.aborted) throw err;
      delay = Math.min(delay * 2, 30_000);
    }
  }
}
