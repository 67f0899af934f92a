import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type OutboxEvent, PermanentError, RetriableError } from '@sluice/core';
import { createNatsSink, type NatsSink } from '@sluice/sink-nats';
import { type NatsServer, startNats, waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Adversarial checks of the NATS sink against a nats-server that enforces permissions.

const PASSWORD = 'relay-secret';

function outbox(id: string): OutboxEvent {
  return {
    kind: 'outbox',
    id,
    aggregateType: 'order',
    aggregateId: 'order-42',
    type: 'OrderPaid',
    payload: '{}',
    headers: {},
    source: {
      lsn: '0/16B3748',
      commitLsn: '0/16B3800',
      xid: 742,
      commitTime: '2026-11-21T10:00:00.000Z',
      seq: 0,
      snapshot: null,
    },
  };
}

let dir: string;
let nats: NatsServer;
const sinks: NatsSink[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-adv-nats-'));
  const config = join(dir, 'auth.conf');
  // The relay may publish row changes but not outbox events: a permission mistake an operator can make.
  await writeFile(
    config,
    `authorization {
  users = [
    { user: relay, password: ${PASSWORD}, permissions: {
        publish: { allow: ["$JS.API.>", "perm.>"], deny: ["perm.outbox.>"] },
        subscribe: { allow: ["_INBOX.>"] } } }
  ]
}
`,
  );
  nats = await startNats({ args: ['-c', config] });
});
afterAll(async () => {
  for (const s of sinks) await s.close().catch(() => undefined);
  await nats?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('NATS sink without publish permission on a subject', () => {
  it('rejects the publish with a PermanentError naming the permission, not a PubAck timeout retried forever', async () => {
    const sink = createNatsSink({
      servers: nats.url,
      user: 'relay',
      pass: PASSWORD,
      stream: 'PERM',
      subjectPrefix: 'perm',
      ackTimeoutMs: 3000,
    });
    sinks.push(sink);
    await sink.start();
    const publish = sink.publish(outbox('perm-1'));
    await expect(publish).rejects.toBeInstanceOf(PermanentError);
    await expect(publish).rejects.toThrow(/not authorised[\s\S]*perm\.outbox\.order\.OrderPaid/);
  });
});

describe('NATS sink whose credentials stop working', () => {
  it('fails its publishes permanently once nats.js gives up reconnecting, instead of retrying a closed connection for ever', async () => {
    const config = join(dir, 'rotated.conf');
    const users = (password: string) =>
      `authorization { users = [ { user: relay, password: ${password} } ] }\n`;
    await writeFile(config, users('before'));
    const server = await startNats({ args: ['-c', config] });
    try {
      const sink = createNatsSink({
        servers: server.url,
        user: 'relay',
        pass: 'before',
        stream: 'ROTATED',
        subjectPrefix: 'rotated',
        ackTimeoutMs: 500,
      });
      sinks.push(sink);
      await sink.start();
      await sink.publish(outbox('rotated-1'));

      // The password changes under the relay: nats.js is refused twice in a row and closes the connection.
      await writeFile(config, users('after'));
      await server.restart();
      let last: unknown;
      await waitFor(
        async () => {
          last = await sink.publish(outbox('rotated-2')).then(
            () => undefined,
            (err: unknown) => err,
          );
          if (!(last instanceof PermanentError) && !(last instanceof RetriableError)) throw last;
          return last instanceof PermanentError;
        },
        { timeoutMs: 30_000, intervalMs: 250, message: 'a publish to fail permanently' },
      );
      expect(String(last)).toMatch(/NATS connection .* closed/);
      expect(sink.status()).toMatchObject({ ready: false });
      expect(sink.status().detail).toMatch(/closed/);
    } finally {
      await server.dispose();
    }
  });
});

/**
 * Whether every thread of the process is stopped. SIGSTOP is delivered asynchronously: until the
 * kernel has stopped each thread, the server can still answer a publish.
 */
async function stopped(pid: number): Promise<boolean> {
  const tasks = await readdir(`/proc/${pid}/task`);
  for (const task of tasks) {
    const stat = await readFile(`/proc/${pid}/task/${task}/stat`, 'utf8').catch(() => '');
    const state = stat.slice(stat.lastIndexOf(') ') + 2, stat.lastIndexOf(') ') + 3);
    if (state !== 'T' && state !== 't') return false;
  }
  return true;
}

describe('NATS sink closing while nats-server does not answer', () => {
  it('closes within its ack timeout and a bounded drain, not after nats.js notices the stale connection minutes later', async () => {
    const server = await startNats();
    const pid = Number((await readFile(join(dirname(server.storeDir), 'nats-server.pid'), 'utf8')).trim());
    try {
      const sink = createNatsSink({
        servers: server.url,
        stream: 'FROZEN',
        subjectPrefix: 'frozen',
        ackTimeoutMs: 500,
      });
      sinks.push(sink);
      await sink.start();
      await sink.publish(outbox('frozen-1'));
      // The server hangs (a network blackhole looks the same): the TCP connection stays open, nothing answers.
      process.kill(pid, 'SIGSTOP');
      await waitFor(() => stopped(pid), { timeoutMs: 5_000, intervalMs: 10, message: 'nats-server to stop' });
      const pending = sink.publish(outbox('frozen-2')).catch((err: unknown) => err);
      const startedAt = Date.now();
      let closed = false;
      const closing = sink.close().finally(() => {
        closed = true;
      });
      await waitFor(() => closed, { timeoutMs: 15_000, message: 'sink.close() to return' });
      await closing;
      expect(Date.now() - startedAt).toBeLessThan(5_000);
      expect(await pending).toBeInstanceOf(RetriableError);
    } finally {
      process.kill(pid, 'SIGCONT');
      await server.dispose();
    }
  });
});
