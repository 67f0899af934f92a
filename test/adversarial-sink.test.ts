import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type OutboxEvent, PermanentError } from '@sluice/core';
import { createNatsSink, type NatsSink } from '@sluice/sink-nats';
import { type NatsServer, startNats } from '@sluice/testkit';
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
