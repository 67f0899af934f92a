import { connect } from '@nats-io/transport-node';
import { createKvPositionStore, kvKeyPart } from '@sluice/sink-nats';
import { encodePosition } from '@sluice/source-mongo';
import { type NatsServer, startNats, waitFor } from '@sluice/testkit';
import { type Document, Long, MongoClient, ObjectId } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStream, type StoredMessage, streamMessageCount } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

/**
 * The MongoDB source against a real replica set: SLUICE_TEST_MONGODB_URL, e.g.
 * `mongodb://127.0.0.1:27017/?replicaSet=rs0` (a one-member replica set is enough; `mongod
 * --replSet rs0` then `rs.initiate()`). No MongoDB server can be installed on the project's machines,
 * so without the variable the suite is skipped, saying so once. Each test uses its own database and
 * its own nats-server, and drops the database at the end.
 */
const MONGO_URL = process.env['SLUICE_TEST_MONGODB_URL'];
if (!MONGO_URL) console.log('skipped: SLUICE_TEST_MONGODB_URL not set');

let nats: NatsServer;
let client: MongoClient;
const relays: RelayProcess[] = [];
const databases: string[] = [];
let counter = 0;

describe.skipIf(!MONGO_URL)('MongoDB change streams to JetStream (real replica set)', () => {
  beforeAll(async () => {
    nats = await startNats();
    client = new MongoClient(MONGO_URL as string, { promoteLongs: false });
    await client.connect();
  });
  afterAll(async () => {
    await Promise.all(relays.map((r) => r.kill('SIGKILL').catch(() => {})));
    for (const name of databases)
      await client
        ?.db(name)
        .dropDatabase()
        .catch(() => {});
    await client?.close();
    await nats?.dispose();
  });

  /** A fresh database and relay settings of its own (slot, stream, prefix). */
  function setup(overrides: Record<string, string> = {}) {
    counter++;
    const name = `sluice_t${process.pid}_${counter}`;
    databases.push(name);
    const env = {
      SLUICE_SOURCES: 'mongodb',
      SLUICE_MONGODB_URL: MONGO_URL as string,
      SLUICE_MONGODB_DATABASE: name,
      SLUICE_NATS_URL: nats.url,
      SLUICE_SLOT: name,
      SLUICE_STREAM: name.toUpperCase(),
      SLUICE_SUBJECT_PREFIX: name,
      SLUICE_POSITION_BUCKET: `${name}_positions`,
      SLUICE_HTTP_PORT: '0',
      SLUICE_SNAPSHOT: 'never',
      SLUICE_LOG_LEVEL: 'info',
      ...overrides,
    };
    return { db: client.db(name), name, env, stream: env.SLUICE_STREAM, prefix: name };
  }

  async function start(env: Record<string, string>): Promise<RelayProcess> {
    const relay = spawnRelay(env);
    relays.push(relay);
    await relay.waitForLog(/streaming from the MongoDB change stream/, 60_000);
    return relay;
  }

  async function messages(stream: string, count: number): Promise<StoredMessage[]> {
    await waitFor(async () => (await streamMessageCount(nats.url, stream)) >= count, {
      timeoutMs: 60_000,
      intervalMs: 200,
      message: `stream ${stream} to hold ${count} messages`,
    });
    return readStream(nats.url, stream);
  }

  it('publishes insert, update, replace and delete with the envelope, subjects and deterministic ids', async () => {
    const { db, name, env, stream, prefix } = setup();
    const relay = await start(env);
    const users = db.collection('users');
    const _id = new ObjectId();
    await users.insertOne({
      _id,
      name: 'Alice',
      big: Long.fromString('9223372036854775807'),
      tags: ['a', 'b', 'c'],
    });
    await users.updateOne({ _id }, {
      $set: { email: 'alice@example.com' },
      $unset: { name: '' },
      // Keeps the first element: MongoDB 5.0+ reports it as a truncated array.
      $push: { tags: { $each: [], $slice: 1 } },
    } as Document);
    await users.replaceOne({ _id }, { name: 'Alice Jones' });
    await users.deleteOne({ _id });
    const got = await messages(stream, 4);
    expect(got.map((m) => m.subject)).toEqual([
      `${prefix}.cdc.${name}.users.insert`,
      `${prefix}.cdc.${name}.users.update`,
      `${prefix}.cdc.${name}.users.replace`,
      `${prefix}.cdc.${name}.users.delete`,
    ]);
    const [insert, update, replace, remove] = got.map((m) => m.json());
    const key = { _id: { $oid: _id.toHexString() } };
    expect(insert).toMatchObject({ op: 'insert', schema: name, table: 'users', key, before: null });
    expect(insert?.['after']).toMatchObject({ big: { $numberLong: '9223372036854775807' } });
    expect(update).toMatchObject({
      op: 'update',
      key,
      updateDescription: {
        updatedFields: { email: 'alice@example.com' },
        removedFields: ['name'],
        truncatedArrays: [{ field: 'tags', newSize: 1 }],
      },
    });
    expect(replace).toMatchObject({ op: 'replace', key, after: { _id: key._id, name: 'Alice Jones' } });
    expect(remove).toMatchObject({ op: 'delete', key, after: null });
    for (const m of got) {
      expect(m.headers['Nats-Msg-Id']).toMatch(/^mongo:[0-9a-f]{40}$/);
      expect(m.headers['Nats-Msg-Id']).toBe(m.headers['ce-id']);
    }
    expect(new Set(got.map((m) => m.headers['Nats-Msg-Id'])).size).toBe(4);
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
  });

  it('resumes after SIGKILL from the stored token: every insert exactly once, in order per key', async () => {
    const { db, env, stream } = setup({ SLUICE_MONGODB_COLLECTIONS: 'counters' });
    let relay = await start(env);
    const counters = db.collection<{ _id: number; v: number }>('counters');
    const total = 3000;
    const writing = (async () => {
      for (let i = 0; i < total; i += 100) {
        await counters.insertMany(Array.from({ length: 100 }, (_, k) => ({ _id: i + k, v: 0 })));
      }
    })();
    for (let kill = 0; kill < 2; kill++) {
      const target = ((kill + 1) * total) / 3;
      await waitFor(async () => (await streamMessageCount(nats.url, stream)) >= target, {
        timeoutMs: 90_000,
        intervalMs: 100,
      });
      await relay.kill('SIGKILL');
      relay = await start(env);
    }
    await writing;
    const got = await messages(stream, total);
    const ids = got.map((m) => (m.json()['key'] as { _id: number })._id);
    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    await relay.kill('SIGTERM');
  });

  it('stops with the re-snapshot recovery when the oplog no longer holds the stored token', async () => {
    const { db, name, env } = setup();
    // A real high-water mark with its cluster time moved to 1970: long before the oplog's start.
    const reply = await db.command({
      aggregate: 1,
      pipeline: [{ $changeStream: {} }],
      cursor: { batchSize: 0 },
    });
    const data = reply['cursor']['postBatchResumeToken']['_data'] as string;
    const ancient = `82${'00000001'}${'00000001'}${data.slice(18)}`;
    await storePosition(env, name, ancient);
    const relay = spawnRelay(env);
    relays.push(relay);
    const { code } = await relay.exited;
    expect(code).toBe(1);
    expect(relay.output()).toMatch(/history lost|refused the stored resume token/);
    expect(relay.output()).toMatch(/SLUICE_SNAPSHOT=initial/);
  });

  it('stops on a stored token MongoDB refuses, never restarting from now', async () => {
    const { name, env } = setup();
    await storePosition(
      env,
      name,
      '82635019A0000000012B042C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F04',
    );
    const relay = spawnRelay(env);
    relays.push(relay);
    const { code } = await relay.exited;
    expect(code).toBe(1);
    expect(relay.output()).toMatch(/resume token|history lost/);
    expect(relay.output()).not.toMatch(/streaming from the MongoDB change stream/);
  });

  it('takes a snapshot consistent with the stream: a key changed during the copy ends in its latest state', async () => {
    const { db, env, stream } = setup({ SLUICE_SNAPSHOT: 'initial', SLUICE_SNAPSHOT_CHUNK_SIZE: '100' });
    const items = db.collection<{ _id: number; v: number }>('items');
    const count = 2000;
    await items.insertMany(Array.from({ length: count }, (_, i) => ({ _id: i, v: 0 })));
    const relay = spawnRelay(env);
    relays.push(relay);
    await relay.waitForLog(/snapshot: copying collection/, 60_000);
    // Writes racing the copy: updates, deletes and inserts across the whole key range.
    for (let round = 1; round <= 20; round++) {
      await items.updateMany({ _id: { $mod: [7, round % 7] } }, { $inc: { v: 1 } });
      await items.deleteOne({ _id: round * 50 });
      await items.insertOne({ _id: count + round, v: round });
    }
    await relay.waitForLog(/streaming from the MongoDB change stream/, 120_000);
    const final = new Map((await items.find().toArray()).map((d) => [String(d['_id']), d['v']]));
    await waitFor(
      async () => {
        const state = fold(await readStream(nats.url, stream));
        return state.size === final.size && [...final].every(([k, v]) => state.get(k) === v);
      },
      { timeoutMs: 120_000, intervalMs: 500, message: 'the folded stream to equal the collection' },
    );
    await relay.kill('SIGTERM');
  });

  it('publishes outbox documents as domain events with the Postgres outbox subjects and headers', async () => {
    const { db, env, stream, prefix } = setup({ SLUICE_MONGODB_OUTBOX_COLLECTION: 'outbox' });
    const relay = await start(env);
    const _id = new ObjectId();
    await db.collection('outbox').insertOne({
      _id,
      aggregatetype: 'order',
      aggregateid: '42',
      type: 'OrderPlaced',
      payload: { total: '10.50' },
      headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    await db.collection('outbox').deleteOne({ _id });
    const [event] = await messages(stream, 1);
    expect(event?.subject).toBe(`${prefix}.outbox.order.OrderPlaced`);
    expect(event?.headers).toMatchObject({
      'Nats-Msg-Id': _id.toHexString(),
      'ce-type': 'OrderPlaced',
      'ce-subject': '42',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    expect(event?.json()).toEqual({ total: '10.50' });
    // The cleanup delete published nothing.
    expect(await streamMessageCount(nats.url, stream)).toBe(1);
    await relay.kill('SIGTERM');
  });
});

/** Stores a position as the relay would, so a start resumes (or fails) there. */
async function storePosition(env: Record<string, string>, database: string, data: string): Promise<void> {
  const nc = await connect({ servers: env['SLUICE_NATS_URL'] });
  try {
    const store = createKvPositionStore(async () => nc, {
      bucket: env['SLUICE_POSITION_BUCKET'] as string,
      key: `${env['SLUICE_SLOT']}.mongodb.${kvKeyPart(database)}`,
      replicas: 1,
    });
    await store.prepare();
    await store.save(encodePosition({ token: { _data: data }, snapshot: null }, database));
  } finally {
    await nc.close();
  }
}

/** Last state per key from read, insert, update, replace and delete events. */
function fold(messages: StoredMessage[]): Map<string, unknown> {
  const state = new Map<string, unknown>();
  for (const m of messages) {
    const e = m.json() as { op: string; key: { _id: number } | null; after: { v?: unknown } | null };
    if (e.key === null) continue;
    const k = String(e.key._id);
    if (e.op === 'delete') state.delete(k);
    else if (e.after !== null) state.set(k, e.after.v);
  }
  return state;
}
