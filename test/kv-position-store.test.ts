import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { PermanentError } from '@sluice/core';
import { createKvPositionStore, kvKeyPart } from '@sluice/sink-nats';
import { type NatsServer, startNats } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let nats: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.dispose();
});

describe('JetStream KV position store (MongoDB resume tokens)', () => {
  it('creates the bucket only in prepare, then stores and reads back the position', async () => {
    const store = createKvPositionStore(async () => nc, {
      bucket: 'positions_a',
      key: 'sluice.mongodb.shop',
      replicas: 1,
    });
    expect(store.description).toBe('JetStream KV bucket positions_a, key sluice.mongodb.shop');
    await store.check();
    const jsm = await jetstreamManager(nc);
    await expect(jsm.streams.info('KV_positions_a')).rejects.toThrow();
    await store.prepare();
    expect(await store.load()).toBeUndefined();
    await store.save('{"version":1}');
    await store.save('{"version":1,"n":2}');
    const again = createKvPositionStore(async () => nc, {
      bucket: 'positions_a',
      key: 'sluice.mongodb.shop',
      replicas: 1,
    });
    expect(await again.load()).toBe('{"version":1,"n":2}');
    const info = await jsm.streams.info('KV_positions_a');
    expect(info.config.max_msgs_per_subject).toBe(1);
  });

  it('keeps positions of different relays and databases apart', async () => {
    const a = createKvPositionStore(async () => nc, {
      bucket: 'positions_b',
      key: `one.mongodb.${kvKeyPart('shop')}`,
      replicas: 1,
    });
    const b = createKvPositionStore(async () => nc, {
      bucket: 'positions_b',
      key: `two.mongodb.${kvKeyPart('Straße-1')}`,
      replicas: 1,
    });
    await a.prepare();
    await a.save('a');
    await b.save('b');
    expect([await a.load(), await b.load()]).toEqual(['a', 'b']);
    expect(kvKeyPart('Straße-1')).toBe('Stra=C3=9Fe-1');
    expect(kvKeyPart('a=b')).toBe('a=3Db');
  });

  it('refuses a stream that has the bucket name but is not a KV bucket, changing nothing', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'KV_taken', subjects: ['taken.>'] });
    const store = createKvPositionStore(async () => nc, { bucket: 'taken', key: 'k', replicas: 1 });
    await expect(store.check()).rejects.toBeInstanceOf(PermanentError);
    await expect(store.prepare()).rejects.toThrow(/stream KV_taken exists but is not the KV bucket taken/);
    expect((await jsm.streams.info('KV_taken')).config.subjects).toEqual(['taken.>']);
  });
});
