/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries of
 * many events failing together spread out without any of them retrying immediately.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
