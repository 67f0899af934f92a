import { randomUUID } from 'node:crypto';
import { findLeftovers, RUN_MARKER } from './support/leftovers.js';

/**
 * Marks this run's processes (see RUN_MARKER) and, once every test file has finished, fails the
 * run when a relay, postgres or nats-server that a test started still runs; it kills them so the
 * machine is clean either way.
 */
export default function setup(): () => Promise<void> {
  const runId = randomUUID();
  // Test workers are forked after global setup and inherit this; so do the servers they start.
  process.env[RUN_MARKER] = runId;
  return async () => {
    // A process killed at the very end of a file may take a moment to be reaped.
    const deadline = Date.now() + 10_000;
    let left = findLeftovers(runId);
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      left = findLeftovers(runId);
    }
    if (left.length === 0) return;
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    // Vitest only logs an error thrown here ("error during close") and would still exit 0.
    process.exitCode = 1;
    throw new Error(
      `tests left ${left.length} process(es) running (killed now); every test must stop what it starts, even on failure:\n${left
        .map((p) => `  ${p.kind} pid ${p.pid}: ${p.command}`)
        .join('\n')}`,
    );
  };
}
