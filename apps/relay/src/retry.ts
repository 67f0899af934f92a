import { isRetriable, type Logger, PermanentError, SluiceError } from '@sluice/core';

/** Until when start-up retries a server it cannot reach (SLUICE_STARTUP_TIMEOUT). */
export interface StartupDeadline {
  /** Epoch milliseconds. */
  at: number;
  timeoutMs: number;
}

export function startupDeadline(timeoutMs: number, now = Date.now()): StartupDeadline | undefined {
  return timeoutMs > 0 ? { at: now + timeoutMs, timeoutMs } : undefined;
}

/** A server stayed unreachable for the whole of SLUICE_STARTUP_TIMEOUT: the relay gives up (exit 1). */
export class StartupTimeoutError extends PermanentError {
  override name = 'StartupTimeoutError';
  constructor(what: string, timeoutMs: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message.split('\n  fix:')[0] : String(cause);
    const fix = cause instanceof SluiceError && cause.hint ? `${cause.hint}; ` : '';
    super(`${what} still failed after ${timeoutMs / 1000} s (SLUICE_STARTUP_TIMEOUT): ${reason}`, {
      cause,
      code: 'startup_timeout',
      hint: `${fix}the relay gives up starting after SLUICE_STARTUP_TIMEOUT (${timeoutMs / 1000} s; 0 waits for ever): make the server reachable, or raise it`,
    });
  }
}

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
    /** Start-up only: past it, a retriable failure becomes a StartupTimeoutError. Default: retry for ever. */
    deadline?: StartupDeadline | undefined;
  },
): Promise<T> {
  let delay = 500;
  for (;;) {
    try {
      return await fn();
    } catch (raw) {
      const err = opts.classify ? opts.classify(raw) : raw;
      if (!isRetriable(err) || opts.signal.aborted) throw err;
      const deadline = opts.deadline;
      if (deadline !== undefined && Date.now() >= deadline.at)
        throw new StartupTimeoutError(what, deadline.timeoutMs, err);
      // The last wait ends at the deadline, so the last attempt is made then.
      if (deadline !== undefined) delay = Math.max(0, Math.min(delay, deadline.at - Date.now()));
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
