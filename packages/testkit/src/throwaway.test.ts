import fs from 'node:fs';
import { EmbeddedServerError, PortInUseError } from '@sluice/embedded';
import { describe, expect, it } from 'vitest';
import { lostItsPort, startThrowaway } from './throwaway.js';

/** A server whose start fails with the given errors, one per attempt, then succeeds. */
function flakyServers(failures: Error[]) {
  const built: Array<{ dir: string; disposed: boolean }> = [];
  const build = async (dir: string) => {
    const server = {
      dir,
      disposed: false,
      async dispose() {
        server.disposed = true;
        await fs.promises.rm(dir, { recursive: true, force: true });
      },
    };
    built.push(server);
    return server;
  };
  const start = async () => {
    const failure = failures.shift();
    if (failure) throw failure;
  };
  return { built, build, start };
}

describe('startThrowaway', () => {
  it('builds the server again, in a new directory, when its port was taken before it could bind', async () => {
    const { built, build, start } = flakyServers([
      new PortInUseError(1234, 'port 1234 on 127.0.0.1 is already in use by another program'),
      new EmbeddedServerError(
        'nats-server (port 4321) did not start: nats-server exited during start-up\n' +
          '[FTL] Error listening on port: 127.0.0.1:4321, "listen tcp 127.0.0.1:4321: bind: address already in use"',
      ),
    ]);
    const server = await startThrowaway('sluice-throwaway-test-', build, start);
    expect(built).toHaveLength(3);
    expect(new Set(built.map((b) => b.dir)).size).toBe(3);
    expect(built.slice(0, 2).every((b) => b.disposed && !fs.existsSync(b.dir))).toBe(true);
    expect(server).toBe(built[2]);
    await server.dispose();
  });

  it('gives up after three port clashes, with the last error', async () => {
    const clash = (n: number) => new PortInUseError(n, `port ${n} is already in use by another program`);
    const { built, build, start } = flakyServers([clash(1), clash(2), clash(3), clash(4)]);
    await expect(startThrowaway('sluice-throwaway-test-', build, start)).rejects.toMatchObject({ port: 3 });
    expect(built).toHaveLength(3);
    expect(built.every((b) => b.disposed)).toBe(true);
  });

  it('does not retry any other failure', async () => {
    const { built, build, start } = flakyServers([new EmbeddedServerError('initdb failed: disk full')]);
    await expect(startThrowaway('sluice-throwaway-test-', build, start)).rejects.toThrow(/disk full/);
    expect(built).toHaveLength(1);
  });

  it('recognises a clash from Postgres and nats-server logs', () => {
    expect(lostItsPort(new Error('could not bind IPv4 address "127.0.0.1": Address already in use'))).toBe(
      true,
    );
    expect(lostItsPort(new Error('listen tcp 127.0.0.1:4222: bind: address already in use'))).toBe(true);
    expect(lostItsPort(new Error('connection refused'))).toBe(false);
    expect(lostItsPort(undefined)).toBe(false);
  });
});
