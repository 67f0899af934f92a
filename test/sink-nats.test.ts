import fs from 'node:fs/promises';
import { DiscardPolicy, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import {
  type ChangeEvent,
  encodeEnvelope,
  type Metrics,
  noopMetrics,
  type OutboxEvent,
  PermanentError,
  RetriableError,
} from '@sluice/core';
import { createNatsSink, type NatsSink } from '@sluice/sink-nats';
import { freePort, type NatsServer, startNats, waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStream, streamMessageCount } from './support/jetstream.js';

const source = {
  lsn: '0/16B3748',
  commitLsn: '0/16B3800',
  xid: 742,
  commitTime: '2026-11-21T10:00:00.000Z',
  seq: 0,
  snapshot: null,
};

function change(seq: number, patch: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    kind: 'change',
    id: `0/16B3800-${seq}`,
    op: 'insert',
    schema: 'public',
    table: 'orders',
    key: { id: String(seq) },
    before: null,
    after: { id: String(seq), status: 'new', total: '10.50' },
    unchanged: [],
    source: { ...source, seq },
    ...patch,
  };
}

function outbox(id: string, payload = '{"orderId":"42","total":"10.50"}'): OutboxEvent {
  return {
    kind: 'outbox',
    id,
    aggregateType: 'order',
    aggregateId: 'order-42',
    type: 'OrderPaid',
    payload,
    headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    source: { ...source, seq: 9 },
  };
}

describe('NATS sink against a real nats-server', () => {
  let nats: NatsServer;
  let admin: NatsConnection;
  const sinks: NatsSink[] = [];

  function sink(options: Partial<Parameters<typeof createNatsSink>[0]> = {}): NatsSink {
    const s = createNatsSink({ servers: nats.url, ...options });
    sinks.push(s);
    return s;
  }

  beforeAll(async () => {
    nats = await startNats();
    admin = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    for (const s of sinks) await s.close().catch(() => undefined);
    await admin?.close();
    await nats?.dispose();
  });

  it('creates the stream on start with <prefix>.>, file storage, the duplicate window, replicas and 7 days of retention', async () => {
    const s = sink({ stream: 'CREATED', subjectPrefix: 'created', duplicateWindowMs: 10 * 60_000 });
    expect(s.status().ready).toBe(false);
    await s.start();

    const info = await (await jetstreamManager(admin)).streams.info('CREATED');
    expect(info.config.subjects).toEqual(['created.>']);
    expect(info.config.storage).toBe(StorageType.File);
    expect(info.config.duplicate_window).toBe(nanos(10 * 60_000));
    expect(info.config.num_replicas).toBe(1);
    expect(info.config.max_age).toBe(nanos(7 * 24 * 3600_000));
    expect(info.config.max_bytes).toBe(-1);
    expect(info.config.discard).toBe(DiscardPolicy.Old);
    expect(s.status()).toEqual({ ready: true });
  });

  it('creates the stream with the retention it is given (maxAgeMs, maxBytes)', async () => {
    await sink({
      stream: 'RETAINED',
      subjectPrefix: 'retained',
      maxAgeMs: 36 * 3600_000,
      maxBytes: 2 ** 30,
    }).start();

    const info = await (await jetstreamManager(admin)).streams.info('RETAINED');
    expect(info.config.max_age).toBe(nanos(36 * 3600_000));
    expect(info.config.max_bytes).toBe(2 ** 30);
  });

  it('check() reads and changes nothing: a missing stream stays missing until start()', async () => {
    const s = sink({ stream: 'CHECKED', subjectPrefix: 'checked' });
    await s.check();

    const jsm = await jetstreamManager(admin);
    await expect(jsm.streams.info('CHECKED')).rejects.toThrow(/stream not found/);
    expect(s.status()).toEqual({ ready: false, detail: 'checked, not started' });
    await s.start();
    expect((await jsm.streams.info('CHECKED')).config.subjects).toEqual(['checked.>']);
  });

  it("uses an operator's stream exactly as it is: extra subjects, a longer window, its own limits are never touched", async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({
      name: 'OPERATED',
      subjects: ['legacy.>', 'operated.>'],
      storage: StorageType.File,
      duplicate_window: nanos(24 * 3600_000),
      max_age: nanos(30 * 24 * 3600_000),
      max_bytes: 2 ** 28,
      max_msgs: 1_000_000,
    });
    const before = (await jsm.streams.info('OPERATED')).config;

    const s = sink({ stream: 'OPERATED', subjectPrefix: 'operated', replicas: 1 });
    await s.start();
    await s.publish(change(1));

    expect((await jsm.streams.info('OPERATED')).config).toEqual(before);
    expect(await streamMessageCount(nats.url, 'OPERATED')).toBe(1);
  });

  it('refuses a stream whose subjects do not cover its prefix, naming the nats stream edit command, and leaves it unchanged', async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: 'NARROW', subjects: ['archive.>'], storage: StorageType.File });
    const before = (await jsm.streams.info('NARROW')).config;

    const s = sink({ stream: 'NARROW', subjectPrefix: 'narrow' });
    const err = await s.start().catch((e: unknown) => e);

    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain(
      'stream NARROW exists but its subjects (archive.>) do not cover narrow.>',
    );
    expect((err as Error).message).toContain("nats stream edit NARROW --subjects 'archive.>,narrow.>'");
    expect((await jsm.streams.info('NARROW')).config).toEqual(before);
    expect(s.status().ready).toBe(false);
  });

  it('refuses a stream whose duplicate window is shorter than it needs, naming --dupe-window, and leaves it unchanged', async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({
      name: 'SHORTWINDOW',
      subjects: ['shortwindow.>'],
      storage: StorageType.File,
      duplicate_window: nanos(60_000),
    });
    const before = (await jsm.streams.info('SHORTWINDOW')).config;

    const check = sink({ stream: 'SHORTWINDOW', subjectPrefix: 'shortwindow' }).check();

    await expect(check).rejects.toBeInstanceOf(PermanentError);
    await expect(check).rejects.toThrow(/its duplicate window \(1m\) is shorter than the relay's 2h/);
    await expect(check).rejects.toThrow(/nats stream edit SHORTWINDOW --dupe-window 2h/);
    expect((await jsm.streams.info('SHORTWINDOW')).config).toEqual(before);
  });

  it('refuses a stream with fewer replicas than configured, naming --replicas, and leaves it unchanged', async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({
      name: 'ONEREPLICA',
      subjects: ['onereplica.>'],
      storage: StorageType.File,
      duplicate_window: nanos(2 * 3600_000),
    });
    const before = (await jsm.streams.info('ONEREPLICA')).config;

    const check = sink({ stream: 'ONEREPLICA', subjectPrefix: 'onereplica', replicas: 3 }).check();

    await expect(check).rejects.toBeInstanceOf(PermanentError);
    await expect(check).rejects.toThrow(
      /it has 1 replica\(s\), fewer than the 3 the relay is configured for/,
    );
    await expect(check).rejects.toThrow(
      /nats stream edit ONEREPLICA --replicas 3[\s\S]*SLUICE_STREAM_REPLICAS=1/,
    );
    expect((await jsm.streams.info('ONEREPLICA')).config).toEqual(before);
  });

  it('refuses to start on an existing memory stream when configured for file storage, saying how to fix it', async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: 'INMEMORY', subjects: ['inmemory.>'], storage: StorageType.Memory });

    const start = sink({ stream: 'INMEMORY', subjectPrefix: 'inmemory' }).start();
    await expect(start).rejects.toBeInstanceOf(PermanentError);
    await expect(start).rejects.toThrow(
      /uses memory storage .* storage cannot be changed in place\n {2}fix: /s,
    );
  });

  it('publishes a row change to <prefix>.cdc.<schema>.<table>.<op> with CloudEvents headers and the envelope body', async () => {
    const s = sink({ stream: 'CHANGES', subjectPrefix: 'changes', ceSource: '/sluice/app' });
    await s.start();
    const event = change(1);

    await s.publish(event);

    const [stored, ...rest] = await readStream(nats.url, 'CHANGES');
    expect(rest).toEqual([]);
    expect(stored?.subject).toBe('changes.cdc.public.orders.insert');
    expect(stored?.headers).toMatchObject({
      'Nats-Msg-Id': '0/16B3800-1',
      'ce-specversion': '1.0',
      'ce-id': '0/16B3800-1',
      'ce-source': '/sluice/app',
      'ce-type': 'io.sluice.cdc.insert',
      'ce-subject': 'public.orders',
      'ce-time': '2026-11-21T10:00:00.000Z',
      'content-type': 'application/json',
      'sluice-commit-lsn': '0/16B3800',
      'sluice-seq': '1',
    });
    expect(stored?.body).toBe(encodeEnvelope(event));
    expect(stored?.json()).toMatchObject({
      op: 'insert',
      schema: 'public',
      table: 'orders',
      after: { id: '1', status: 'new', total: '10.50' },
      source: { commitLsn: '0/16B3800', seq: 1 },
    });
  });

  it('publishes an outbox event to <prefix>.outbox.<aggregatetype>.<type> with its payload verbatim and its own headers', async () => {
    const s = sink({ stream: 'OUTBOX', subjectPrefix: 'outbox' });
    await s.start();
    const payload = '{ "orderId": "42",\n  "total": "10.50" }';

    await s.publish(outbox('018f7a9e-5b7c-7000-8000-000000000001', payload));

    const [stored] = await readStream(nats.url, 'OUTBOX');
    expect(stored?.subject).toBe('outbox.outbox.order.OrderPaid');
    expect(stored?.body).toBe(payload);
    expect(stored?.headers).toMatchObject({
      'Nats-Msg-Id': '018f7a9e-5b7c-7000-8000-000000000001',
      'ce-id': '018f7a9e-5b7c-7000-8000-000000000001',
      'ce-type': 'OrderPaid',
      'ce-subject': 'order-42',
      'ce-source': 'sluice/OUTBOX',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
  });

  it('stores an event published twice only once (JetStream dedupe on Nats-Msg-Id) and resolves both publishes', async () => {
    const s = sink({ stream: 'DEDUPE', subjectPrefix: 'dedupe' });
    await s.start();

    await s.publish(change(7));
    await s.publish(change(7));
    await s.publish(outbox('e-1'));
    await s.publish(outbox('e-1'));

    const stored = await readStream(nats.url, 'DEDUPE');
    expect(stored.map((m) => m.headers['Nats-Msg-Id'])).toEqual(['0/16B3800-7', 'e-1']);
  });

  it('issues a batch of publishes synchronously, each with its own promise, and stores all of them in order', async () => {
    const s = sink({ stream: 'BATCH', subjectPrefix: 'batch' });
    await s.start();

    const events = Array.from({ length: 200 }, (_, i) => change(i));
    await Promise.all(events.map((e) => s.publish(e)));

    const stored = await readStream(nats.url, 'BATCH');
    expect(stored.map((m) => m.headers['Nats-Msg-Id'])).toEqual(events.map((e) => e.id));
  });

  it('rejects a message over the server max_payload with a PermanentError naming the limit', async () => {
    const s = sink({ stream: 'BIG', subjectPrefix: 'big' });
    await s.start();
    const maxPayload = admin.info?.max_payload ?? 1024 * 1024;
    const huge = JSON.stringify({ blob: 'x'.repeat(maxPayload) });

    const publish = s.publish(outbox('too-big', huge));

    await expect(publish).rejects.toBeInstanceOf(PermanentError);
    await expect(publish).rejects.toThrow(new RegExp(`over the server's max_payload of ${maxPayload} bytes`));
    expect(await streamMessageCount(nats.url, 'BIG')).toBe(0);
  });

  it('rejects an event whose body cannot be built with a PermanentError coded unbuildable, storing nothing', async () => {
    const s = sink({ stream: 'UNBUILDABLE', subjectPrefix: 'unbuildable' });
    await s.start();
    // A value no envelope can hold (the source never produces one): the relay dead-letters it.
    const bad = change(1, { after: { id: '1', n: 10n as unknown as string } });

    const publish = s.publish(bad);

    await expect(publish).rejects.toBeInstanceOf(PermanentError);
    await expect(publish).rejects.toMatchObject({ code: 'unbuildable' });
    await expect(publish).rejects.toThrow(`cannot encode event ${bad.id}`);
    await s.publish(change(2));
    expect((await readStream(nats.url, 'UNBUILDABLE')).map((m) => m.headers['Nats-Msg-Id'])).toEqual([
      change(2).id,
    ]);
  });

  it('rejects a publish into a full discard-new stream with a PermanentError naming max_msgs', async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({
      name: 'FULL',
      subjects: ['full.>'],
      storage: StorageType.File,
      max_msgs: 1,
      discard: DiscardPolicy.New,
      duplicate_window: nanos(2 * 3600_000),
    });
    const s = sink({ stream: 'FULL', subjectPrefix: 'full' });
    await s.start();
    await s.publish(change(1));

    const publish = s.publish(change(2));

    await expect(publish).rejects.toBeInstanceOf(PermanentError);
    await expect(publish).rejects.toThrow(/maximum messages exceeded[\s\S]*max_msgs/);
  });

  it('key ordering: rejects with a RetriableError within the ack timeout while nats-server is down, and delivers once after restart', async () => {
    const reconnects: string[] = [];
    const metrics: Metrics = { ...noopMetrics, reconnect: (component) => reconnects.push(component) };
    const s = sink({
      stream: 'OUTAGE',
      subjectPrefix: 'outage',
      ackTimeoutMs: 1000,
      metrics,
      ordering: 'key',
    });
    await s.start();
    await s.publish(change(1));

    await nats.stop();
    await waitFor(() => !s.status().ready, { timeoutMs: 5000, message: 'the sink to notice the outage' });
    expect(s.status().detail).toMatch(/disconnected/);

    const startedAt = Date.now();
    const during = s.publish(change(2));
    await expect(during).rejects.toBeInstanceOf(RetriableError);
    await expect(during).rejects.toThrow(
      /event 0\/16B3800-2 to outage\.cdc\.public\.orders\.insert .* no PubAck within 1000 ms/,
    );
    expect(Date.now() - startedAt).toBeLessThan(1000 + 1500);

    await nats.start();
    await waitFor(() => s.status().ready, { timeoutMs: 30_000, message: 'the sink to reconnect' });
    expect(reconnects).toEqual(['nats']);

    // The retry carries the same id: whether or not the buffered attempt reached the stream
    // after the reconnect, the event is stored once.
    await s.publish(change(2));
    const stored = await readStream(nats.url, 'OUTAGE');
    expect(stored.map((m) => m.headers['Nats-Msg-Id'])).toEqual(['0/16B3800-1', '0/16B3800-2']);
  });

  it('key ordering: rejects with a RetriableError saying no responders when its stream is deleted, then re-creates it', async () => {
    const s = sink({ stream: 'DELETED', subjectPrefix: 'deleted', ordering: 'key' });
    await s.start();
    await s.publish(change(1));
    // A connection of its own: the shared one may not have noticed the previous test's restart yet.
    const fresh = await connect({ servers: nats.url });
    try {
      await (await jetstreamManager(fresh)).streams.delete('DELETED');
    } finally {
      await fresh.close();
    }

    const err = await s.publish(change(2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriableError);
    expect((err as Error).message).toMatch(/no responders/);
    await waitFor(() => s.status().ready, { timeoutMs: 30_000, message: 'the sink to re-create its stream' });
    await s.publish(change(2));
    const stored = await readStream(nats.url, 'DELETED');
    expect(stored.map((m) => m.headers['Nats-Msg-Id'])).toEqual(['0/16B3800-2']);
  });

  it('re-creates its stream after a reconnect to a server that lost it', async () => {
    const s = sink({ stream: 'RECREATED', subjectPrefix: 'recreated' });
    await s.start();
    await s.publish(change(1));

    await nats.stop();
    await fs.rm(nats.storeDir, { recursive: true, force: true });
    await fs.mkdir(nats.storeDir);
    await nats.start();
    await waitFor(() => s.status().ready, {
      timeoutMs: 30_000,
      message: 'the sink to reconnect and re-provision',
    });

    await s.publish(change(2));
    const stored = await readStream(nats.url, 'RECREATED');
    expect(stored.map((m) => m.headers['Nats-Msg-Id'])).toEqual(['0/16B3800-2']);
  });

  it('drains on close and reports not ready afterwards', async () => {
    const s = sink({ stream: 'CLOSING', subjectPrefix: 'closing' });
    await s.start();
    const pending = [s.publish(change(1)), s.publish(change(2))];

    await s.close();

    await expect(Promise.all(pending)).resolves.toEqual([undefined, undefined]);
    expect(s.status()).toEqual({ ready: false, detail: 'closed' });
    await expect(s.publish(change(3))).rejects.toBeInstanceOf(RetriableError);
    expect(await streamMessageCount(nats.url, 'CLOSING')).toBe(2);
  });
});

describe('NATS sink with no nats-server listening', () => {
  it('fails to start with a RetriableError that names the servers setting', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const s = createNatsSink({ servers: url });

    const start = s.start();

    await expect(start).rejects.toBeInstanceOf(RetriableError);
    await expect(start).rejects.toThrow(
      new RegExp(`cannot connect to NATS at ${url}[\\s\\S]*check the servers setting`),
    );
    expect(s.status()).toEqual({ ready: false, detail: `cannot connect to ${url}` });
  });
});

describe('NATS sink against a nats-server without JetStream', () => {
  let plain: NatsServer;

  beforeAll(async () => {
    // Go flags: the last -js wins, so this turns off the testkit's -js.
    plain = await startNats({ args: ['-js=false'] });
  });

  afterAll(async () => {
    await plain?.dispose();
  });

  it('refuses to start with a PermanentError that says to start nats-server with -js', async () => {
    const s = createNatsSink({ servers: plain.url });

    const start = s.start();

    await expect(start).rejects.toBeInstanceOf(PermanentError);
    await expect(start).rejects.toThrow(/JetStream is not enabled[\s\S]*start nats-server with -js/);
    expect(s.status().ready).toBe(false);
    await s.close();
  });
});
