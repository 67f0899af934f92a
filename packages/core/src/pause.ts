import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits `ms`, or less when `signal` aborts: every retry and poll loop waits this way so that a
 * stop is never held up by a backoff. Resolves true after the full wait, false when aborted.
 */
export async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
