import { spawn } from 'node:child_process';
import { waitFor } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { classify, findLeftovers, RUN_MARKER } from './support/leftovers.js';

describe('the end-of-run check for processes a test left running', () => {
  it('tells relays, postmasters and nats-servers from everything else by their command line', () => {
    expect(classify(['node', '/w/apps/relay/bin/sluice.js', 'run'])).toBe('relay');
    expect(classify(['/usr/lib/postgresql/15/bin/postgres', '-D', '/tmp/x'])).toBe('postgres');
    expect(classify(['/usr/sbin/nats-server', '-js'])).toBe('nats-server');
    expect(classify(['node', '/w/node_modules/vitest/dist/workers/forks.js'])).toBeUndefined();
    expect(classify(['psql', 'postgres://x'])).toBeUndefined();
  });

  it("finds a relay carrying this run's marker until it is gone, and ignores another run's", async () => {
    const runId = `leftovers-test-${process.pid}`;
    const keepAlive = ['-e', 'setInterval(() => {}, 1000)', '/w/apps/relay/bin/sluice.js'];
    const ours = spawn(process.execPath, keepAlive, { env: { [RUN_MARKER]: runId }, stdio: 'ignore' });
    const theirs = spawn(process.execPath, keepAlive, {
      env: { [RUN_MARKER]: `${runId}-other` },
      stdio: 'ignore',
    });
    try {
      const found = await waitFor(() => {
        const left = findLeftovers(runId);
        return left.length > 0 ? left : undefined;
      });
      expect(found).toEqual([
        { pid: ours.pid, kind: 'relay', command: expect.stringContaining('sluice.js') },
      ]);
    } finally {
      ours.kill('SIGKILL');
      theirs.kill('SIGKILL');
    }
    await waitFor(() => findLeftovers(runId).length === 0);
  });
});
