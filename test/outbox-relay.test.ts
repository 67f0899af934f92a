import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { parseExposition } from '@sluice/metrics';
import { emit, enqueue } from '@sluice/outbox';
import { freePort, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForConnectionsClosed } from './support/connections.js';
import { relayEnv } from './support/env.js';
import { EVENT_HEADERS, readStream, type StoredMessage, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import type { RelayProcess } from './support/relay-process.js';
import { inTransaction as inPoolTransaction } from './support/transaction.js';

const { pg: server, nats, spawn, startRelay } = relayHarness();
let pool: pg.Pool;

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: server.url(), max: 2, application_name: 'outbox-relay-test' });
  await server.query('CREATE TABLE public.orders (id int PRIMARY KEY, total numeric NOT NULL)');
});
afterAll(async () => {
  await pool?.end();
  await waitForConnectionsClosed(server, "application_name = 'outbox-relay-test'");
});

/** Names of the streams nats-server holds. */
async function readStreamNames(): Promise<string[]> {
  const nc = await connect({ servers: nats.url });
  try {
    return await (await jetstreamManager(nc)).streams.names().next();
  } finally {
    await nc.close();
  }
}

/** Runs `fn` in one transaction on one client, as an application would. */
function inTransaction<T>(
  fn: (client: pg.PoolClient) => Promise<T>,
  outcome: 'COMMIT' | 'ROLLBACK' = 'COMMIT',
): Promise<T> {
  return inPoolTransaction(pool, fn, outcome);
}

let nextOrder = 0;
async function insertOrder(client: pg.PoolClient, total = '19.90'): Promise<number> {
  nextOrder++;
  await client.query('INSERT INTO public.orders VALUES ($1, $2)', [nextOrder, total]);
  return nextOrder;
}

/** Waits for `count` messages and checks there are no more: whatever is committed last decides the count. */
async function exactly(env: { SLUICE_STREAM: string }, count: number): Promise<StoredMessage[]> {
  const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, count);
  expect(messages).toHaveLength(count);
  return messages;
}

const position = (m: StoredMessage) => [m.headers['sluice-commit-lsn'], m.headers['sluice-seq']];

/**
 * Checks that the stream already holds the messages in transaction order (commit LSN, then seq),
 * as the relay's default commit ordering promises when no publish had to be retried, and
 * returns them.
 */
function inTransactionOrder(messages: StoredMessage[]): StoredMessage[] {
  expect(messages.map(position)).toEqual(byPosition(messages).map(position));
  return messages;
}

/** Messages sorted by transaction position, as a subscriber reassembling transactions would. */
function byPosition(messages: StoredMessage[]): StoredMessage[] {
  // An LSN (`16/B374D848`) in stream mode, the transaction id in decimal in poll mode.
  const lsn = (m: StoredMessage) => {
    const text = m.headers['sluice-commit-lsn'] ?? '0';
    if (!text.includes('/')) return BigInt(text);
    const [hi = '0', lo = '0'] = text.split('/');
    return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
  };
  return [...messages].sort((a, b) => {
    const d = lsn(a) - lsn(b);
    return d !== 0n ? (d < 0n ? -1 : 1) : Number(a.headers['sluice-seq']) - Number(b.headers['sluice-seq']);
  });
}

describe('sluice run publishes outbox events merged with row changes', () => {
  it('publishes a row change and two outbox events of one transaction in transaction order', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.orders' });
    await startRelay(env);

    const [orderId, ids] = await inTransaction(async (client) => {
      const id = await insertOrder(client);
      const eventIds = await enqueue(client, [
        {
          aggregateType: 'order',
          aggregateId: String(id),
          type: 'OrderPlaced',
          payload: { total: '19.90', lines: [{ sku: 'A-1', qty: 2 }] },
          headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
        },
        { aggregateType: 'customer', aggregateId: 'c-7', type: 'Customer.Ordered', payload: null },
      ]);
      return [id, eventIds] as const;
    });

    const messages = await exactly(env, 3);
    const p = env.SLUICE_SUBJECT_PREFIX;
    expect(messages.map((m) => m.subject)).toEqual([
      `${p}.cdc.public.orders.insert`,
      `${p}.outbox.order.OrderPlaced`,
      `${p}.outbox.customer.Customer%2EOrdered`,
    ]);
    const [row, placed, counted] = messages as [StoredMessage, StoredMessage, StoredMessage];
    expect(row.json()).toMatchObject({ op: 'insert', after: { id: orderId, total: '19.90' } });
    const commitLsn = (row.json()['source'] as { commitLsn: string }).commitLsn;
    expect(messages.map(position)).toEqual([
      [commitLsn, '0'],
      [commitLsn, '1'],
      [commitLsn, '2'],
    ]);

    expect(placed.headers['Nats-Msg-Id']).toBe(ids[0]);
    expect(placed.headers['ce-id']).toBe(ids[0]);
    expect(placed.headers['ce-type']).toBe('OrderPlaced');
    expect(placed.headers['ce-subject']).toBe(String(orderId));
    expect(placed.headers['ce-specversion']).toBe('1.0');
    expect(placed.headers['ce-time']).toBe((row.json()['source'] as { commitTime: string }).commitTime);
    expect(placed.headers['traceparent']).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(counted.headers['Nats-Msg-Id']).toBe(ids[1]);
    expect(counted.headers['ce-type']).toBe('Customer.Ordered');
    expect(counted.headers['ce-subject']).toBe('c-7');
    expect(counted.headers['traceparent']).toBeUndefined();
    // Every header an outbox event carries (docs/events.md#headers, docs/outbox.md), nothing else;
    // each message expects its predecessor in the stream (commit ordering's chain).
    expect(Object.keys(counted.headers).sort()).toEqual(
      [...EVENT_HEADERS, 'Nats-Expected-Last-Msg-Id'].sort(),
    );
    expect(counted.headers).toMatchObject({
      'Nats-Expected-Stream': env.SLUICE_STREAM,
      'Nats-Expected-Last-Msg-Id': placed.headers['Nats-Msg-Id'],
      'ce-source': `sluice/${env.SLUICE_STREAM}`,
      'content-type': 'application/json',
    });
    expect(placed.headers['Nats-Expected-Last-Msg-Id']).toBe(row.headers['Nats-Msg-Id']);

    // The body is the payload column's text exactly as Postgres returns it.
    const stored = await server.query<{ id: string; payload: string | null }>(
      'SELECT id::text, payload::text FROM sluice.outbox WHERE id = ANY($1::uuid[])',
      [ids],
    );
    const byId = new Map(stored.map((r) => [r.id, r.payload]));
    expect(placed.body).toBe(byId.get(ids[0] as string));
    expect(placed.body).toBe('{"lines": [{"qty": 2, "sku": "A-1"}], "total": "19.90"}');
    expect(counted.body).toBe('null');
  });

  it('publishes a payload holding 12345678901234567890 byte for byte', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.orders' });
    await startRelay(env);
    const id = randomUUID();

    await server.query(
      `INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload, headers)
       VALUES ($1, 'ledger', 'acct-1', 'Credited', '{"amount": 12345678901234567890, "exact": 0.10000000000000000001}', '{"x-tenant": "t1"}')`,
      [id],
    );

    const [message] = await exactly(env, 1);
    expect(message?.body).toBe('{"exact": 0.10000000000000000001, "amount": 12345678901234567890}');
    expect(message?.headers['Nats-Msg-Id']).toBe(id);
    expect(message?.headers['x-tenant']).toBe('t1');
  });

  it('publishes nothing for a rolled-back transaction', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.orders' });
    await startRelay(env);
    const rolledBack = await inTransaction(async (client) => {
      await insertOrder(client);
      return enqueue(client, { aggregateType: 'order', aggregateId: '1', type: 'Never', payload: {} });
    }, 'ROLLBACK');
    // Postgres decodes transactions in commit order: once the marker is in the stream, the
    // rolled-back transaction before it has been passed over for good.
    const marker = await inTransaction((client) =>
      enqueue(client, { aggregateType: 'marker', aggregateId: '1', type: 'Marker', payload: {} }),
    );

    const messages = await exactly(env, 1);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual([marker]);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).not.toContain(rolledBack);
  });

  it('publishes events written with emit() as transactional logical messages, even with an empty publication', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: '', SLUICE_OUTBOX_TABLE: 'none' });
    await startRelay(env);
    const published = await server.query('SELECT 1 FROM pg_publication_tables WHERE pubname = $1', [
      env.SLUICE_PUBLICATION,
    ]);
    expect(published).toEqual([]);

    const ids = await inTransaction(async (client) => {
      await insertOrder(client);
      const emitted = await emit(client, [
        {
          aggregateType: 'order',
          aggregateId: '9',
          type: 'OrderPlaced',
          payload: { a: 1 },
          headers: { h: 'v' },
        },
        { aggregateType: 'order', aggregateId: '9', type: 'OrderPaid', payload: { b: 2 } },
      ]);
      // An application may also write the message itself; its payload text travels verbatim.
      await client.query("SELECT pg_logical_emit_message(true, 'sluice.outbox', $1)", [
        '{"id":"raw-1","aggregatetype":"ledger","aggregateid":"a","type":"Big","payload":{"amount": 12345678901234567890}}',
      ]);
      return emitted;
    });
    await inTransaction((client) =>
      emit(
        client,
        { aggregateType: 'order', aggregateId: '9', type: 'Other', payload: {} },
        { prefix: 'app' },
      ),
    );

    const messages = inTransactionOrder(await exactly(env, 3));
    const p = env.SLUICE_SUBJECT_PREFIX;
    expect(messages.map((m) => [m.subject, m.headers['Nats-Msg-Id'], m.body])).toEqual([
      [`${p}.outbox.order.OrderPlaced`, ids[0], '{"a":1}'],
      [`${p}.outbox.order.OrderPaid`, ids[1], '{"b":2}'],
      [`${p}.outbox.ledger.Big`, 'raw-1', '{"amount": 12345678901234567890}'],
    ]);
    expect(messages.map((m) => m.headers['sluice-seq'])).toEqual(['0', '1', '2']);
    expect(new Set(messages.map((m) => m.headers['sluice-commit-lsn'])).size).toBe(1);
    expect(messages[0]?.headers['h']).toBe('v');
  });

  it('publishes the inserts of deleteAfterInsert and leaves the table empty, without warnings', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: '' });
    const relay = await startRelay(env);
    const ids = await inTransaction((client) =>
      enqueue(
        client,
        [
          { aggregateType: 'order', aggregateId: '5', type: 'OrderPlaced', payload: { n: 1 } },
          { aggregateType: 'order', aggregateId: '5', type: 'OrderPaid', payload: { n: 2 } },
        ],
        { deleteAfterInsert: true },
      ),
    );

    // The marker's transaction comes after the deletes in the WAL: once it is in, they were decoded.
    const marker = await inTransaction((client) =>
      enqueue(client, { aggregateType: 'marker', aggregateId: '5', type: 'Marker', payload: {} }),
    );

    const messages = inTransactionOrder(await exactly(env, 3));
    expect(messages.map((m) => [m.headers['Nats-Msg-Id'], m.body])).toEqual([
      [ids[0], '{"n": 1}'],
      [ids[1], '{"n": 2}'],
      [marker, '{}'],
    ]);
    const [{ n }] = (await server.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM sluice.outbox WHERE id = ANY($1::uuid[])',
      [ids],
    )) as [{ n: number }];
    expect(n).toBe(0);
    expect(relay.logs().filter((l) => l['level'] === 'warn')).toEqual([]);
  });

  it('never publishes updates or deletes of outbox rows, and warns once naming the table', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: '' });
    const relay = await startRelay(env);
    const first = await inTransaction((client) =>
      enqueue(client, { aggregateType: 'order', aggregateId: '6', type: 'OrderPlaced', payload: {} }),
    );
    await server.query(`UPDATE sluice.outbox SET type = 'Changed' WHERE id = $1`, [first]);
    await server.query('DELETE FROM sluice.outbox WHERE id = $1', [first]);
    const marker = await inTransaction((client) =>
      enqueue(client, { aggregateType: 'marker', aggregateId: '6', type: 'Marker', payload: {} }),
    );

    const messages = await exactly(env, 2);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual([first, marker]);
    const warnings = relay.logs().filter((l) => l['level'] === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.['msg']).toMatch(
      /^outbox table sluice\.outbox: ignoring an update .*only inserts are outbox events/,
    );
  });

  it('in outbox-only mode publishes outbox events and no row changes, with only the outbox table published', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: '' });
    await startRelay(env);
    const published = await server.query<{ t: string }>(
      "SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1",
      [env.SLUICE_PUBLICATION],
    );
    expect(published).toEqual([{ t: 'sluice.outbox' }]);

    const id = await inTransaction(async (client) => {
      await insertOrder(client);
      return enqueue(client, { aggregateType: 'order', aggregateId: '7', type: 'OrderPlaced', payload: {} });
    });
    const messages = await exactly(env, 1);
    expect(messages.map((m) => [m.subject, m.headers['Nats-Msg-Id']])).toEqual([
      [`${env.SLUICE_SUBJECT_PREFIX}.outbox.order.OrderPlaced`, id],
    ]);
  });

  it('in CDC-only mode (SLUICE_OUTBOX_TABLE=none) publishes row changes and treats outbox rows as ordinary rows', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.orders', SLUICE_OUTBOX_TABLE: 'none' });
    await startRelay(env);
    const published = await server.query<{ t: string }>(
      "SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1",
      [env.SLUICE_PUBLICATION],
    );
    expect(published).toEqual([{ t: 'public.orders' }]);

    const first = await inTransaction(async (client) => {
      const id = await insertOrder(client);
      await enqueue(client, {
        aggregateType: 'order',
        aggregateId: String(id),
        type: 'OrderPlaced',
        payload: {},
      });
      return id;
    });
    const second = await inTransaction((client) => insertOrder(client));

    const messages = await exactly(env, 2);
    expect(messages.map((m) => [m.subject, (m.json()['after'] as { id: number }).id])).toEqual([
      [`${env.SLUICE_SUBJECT_PREFIX}.cdc.public.orders.insert`, first],
      [`${env.SLUICE_SUBJECT_PREFIX}.cdc.public.orders.insert`, second],
    ]);
  });

  it('publishes to a custom subject template', async () => {
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: '',
      SLUICE_OUTBOX_SUBJECT: '{prefix}.events.{aggregatetype}.{aggregateid}.{type}',
    });
    await startRelay(env);
    await inTransaction((client) =>
      enqueue(client, { aggregateType: 'order', aggregateId: 'o.1', type: 'OrderPlaced', payload: {} }),
    );
    const messages = await exactly(env, 1);
    expect(messages[0]?.subject).toBe(`${env.SLUICE_SUBJECT_PREFIX}.events.order.o%2E1.OrderPlaced`);
  });
});

describe('sluice run keeps metric labels bounded', () => {
  it('counts outbox aggregate types past the 100th under table="_other" on /metrics', async () => {
    const port = await freePort();
    const env = relayEnv(server, nats, { SLUICE_TABLES: '', SLUICE_HTTP_PORT: String(port) });
    await startRelay(env);
    // An application that (wrongly) puts an id into the aggregate type: 103 distinct values.
    await inTransaction((client) =>
      enqueue(
        client,
        Array.from({ length: 103 }, (_, i) => ({
          aggregateType: `tenant-${i}`,
          aggregateId: String(i),
          type: 'Touched',
          payload: {},
        })),
      ),
    );
    await exactly(env, 103);

    const published = async () =>
      parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).filter(
        (x) => x.name === 'sluice_events_published_total' && x.labels['kind'] === 'outbox',
      );
    await waitFor(async () => (await published()).reduce((n, x) => n + x.value, 0) === 103, {
      message: 'all 103 outbox events counted on /metrics',
    });
    const series = await published();
    expect(series).toHaveLength(101);
    expect(series.find((x) => x.labels['table'] === '_other')?.value).toBe(3);
    expect(series.filter((x) => x.labels['table'] !== '_other').every((x) => x.value === 1)).toBe(true);
  });
});

describe('sluice run relays an existing outbox table with configuration only', () => {
  it("reads Debezium's outbox table (no headers column) unchanged", async () => {
    await server.query(`CREATE TABLE public.outbox (
      id uuid PRIMARY KEY, aggregatetype varchar(255) NOT NULL, aggregateid varchar(255) NOT NULL,
      type varchar(255) NOT NULL, payload jsonb)`);
    // No SLUICE_OUTBOX_COLUMNS: the missing headers column is detected from the table.
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: 'public.orders',
      SLUICE_OUTBOX_TABLE: 'public.outbox',
    });
    const relay = await startRelay(env);
    expect(relay.output()).not.toMatch(/"level":"(warn|error|fatal)"/);

    const id = await inTransaction(async (client) => {
      await insertOrder(client);
      return enqueue(
        client,
        { aggregateType: 'order', aggregateId: '8', type: 'OrderPlaced', payload: { total: 8 } },
        { table: 'public.outbox', columns: { headers: null } },
      );
    });

    const messages = await exactly(env, 2);
    const p = env.SLUICE_SUBJECT_PREFIX;
    expect(messages.map((m) => [m.subject, m.headers['sluice-seq']])).toEqual([
      [`${p}.cdc.public.orders.insert`, '0'],
      [`${p}.outbox.order.OrderPlaced`, '1'],
    ]);
    expect(messages[1]?.headers['Nats-Msg-Id']).toBe(id);
    expect(messages[1]?.body).toBe('{"total": 8}');
  });

  it('still takes an explicit headers= for a table without headers, and a numeric aggregateid as its text', async () => {
    await server.query(`CREATE TABLE public.int_outbox (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid bigint NOT NULL, type text NOT NULL, payload jsonb)`);
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: '',
      SLUICE_OUTBOX_TABLE: 'public.int_outbox',
      SLUICE_OUTBOX_COLUMNS: 'headers=',
    });
    await startRelay(env);

    await inTransaction((client) =>
      enqueue(
        client,
        { aggregateType: 'account', aggregateId: 9007199254740993n, type: 'Opened', payload: {} },
        { table: 'public.int_outbox', columns: { headers: null } },
      ),
    );

    const [message] = await exactly(env, 1);
    expect(message?.headers['ce-subject']).toBe('9007199254740993');
    expect(message?.body).toBe('{}');
  });

  it('exits 1 when SLUICE_OUTBOX_COLUMNS names a headers column the table lacks, creating nothing', async () => {
    await server.query(`CREATE TABLE public.named_outbox (
      id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`);
    const env = relayEnv(server, nats, {
      SLUICE_OUTBOX_TABLE: 'public.named_outbox',
      SLUICE_OUTBOX_COLUMNS: 'headers=meta',
    });
    const relay = spawn(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain('the outbox table public.named_outbox has no column meta (headers)');
    expect(relay.output()).toContain('headers= when it has no headers column');
    expect(await readStreamNames()).not.toContain(env.SLUICE_STREAM);
  });

  it('reads a table with renamed columns mapped by SLUICE_OUTBOX_COLUMNS, a json payload kept as written', async () => {
    await server.query('CREATE SCHEMA app');
    await server.query(`CREATE TABLE app.events (
      event_id uuid PRIMARY KEY, aggregate_type text NOT NULL, "Aggregate Id" text NOT NULL,
      event_type text NOT NULL, body json, meta jsonb, created timestamptz DEFAULT now())`);
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: '',
      SLUICE_OUTBOX_TABLE: 'app.events',
      SLUICE_OUTBOX_COLUMNS:
        'id=event_id,aggregatetype=aggregate_type,aggregateid=Aggregate Id,type=event_type,payload=body,headers=meta',
    });
    await startRelay(env);
    const id = randomUUID();

    await server.query(
      `INSERT INTO app.events (event_id, aggregate_type, "Aggregate Id", event_type, body, meta)
       VALUES ($1, 'invoice', 'inv-1', 'InvoiceIssued', '{ "z": 1,  "a": [12345678901234567890] }', '{"tenant": "acme"}')`,
      [id],
    );

    const [message] = await exactly(env, 1);
    expect(message?.subject).toBe(`${env.SLUICE_SUBJECT_PREFIX}.outbox.invoice.InvoiceIssued`);
    expect(message?.headers['Nats-Msg-Id']).toBe(id);
    expect(message?.headers['ce-subject']).toBe('inv-1');
    expect(message?.headers['tenant']).toBe('acme');
    expect(message?.body).toBe('{ "z": 1,  "a": [12345678901234567890] }');
  });

  it('dead-letters an outbox row that lacks a field or whose text payload is not JSON, and a logical message that is not JSON, naming the column and the fix, and publishes what follows', async () => {
    await server.query(`CREATE TABLE public.loose_outbox (
      id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload text)`);
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: '',
      SLUICE_OUTBOX_TABLE: 'public.loose_outbox',
      SLUICE_OUTBOX_COLUMNS: 'headers=',
    });
    const relay = await startRelay(env);
    await server.query(
      `INSERT INTO public.loose_outbox VALUES ('00000000-0000-4000-8000-0000000000a1', NULL, '1', 'OrderPlaced', '{}')`,
    );
    await server.query(
      `INSERT INTO public.loose_outbox VALUES ('00000000-0000-4000-8000-0000000000a2', 'order', '2', 'OrderPlaced', 'not json')`,
    );
    await server.query(`SELECT pg_logical_emit_message(true, 'sluice.outbox', 'neither json')`);
    await server.query(
      `INSERT INTO public.loose_outbox VALUES ('00000000-0000-4000-8000-0000000000a3', 'order', '1', 'OrderPaid', '{}')`,
    );

    const [paid] = await exactly(env, 1);
    expect(paid?.headers['Nats-Msg-Id']).toBe('00000000-0000-4000-8000-0000000000a3');
    const letters = await server.query<{
      event_id: string;
      error_code: string;
      error_message: string;
      body: string;
    }>(
      'SELECT event_id, error_code, error_message, body FROM sluice.dead_letters WHERE relay = $1 ORDER BY id',
      [env.SLUICE_SLOT],
    );
    expect(letters.map((l) => [l.event_id.slice(0, 36), l.error_code, l.body])).toEqual([
      ['00000000-0000-4000-8000-0000000000a1', 'bad_row', '{}'],
      ['00000000-0000-4000-8000-0000000000a2', 'bad_row', 'not json'],
      [expect.stringMatching(new RegExp(`^${env.SLUICE_SLOT}:`)), 'bad_row', 'neither json'],
    ]);
    expect(letters[0]?.error_message).toMatch(
      /public.loose_outbox: outbox row at LSN [0-9A-F]+\/[0-9A-F]+: column "aggregatetype" \(aggregateType\) must be a non-empty string, got null/,
    );
    expect(letters[1]?.error_message).toMatch(/column "payload" \(payload\) is not JSON/);
    expect(letters[2]?.error_message).toMatch(/outbox message at LSN .*: content is not JSON/);
    expect(relay.child.exitCode).toBeNull();
  });

  it('exits 1 naming a custom outbox table that does not exist, and the fix', async () => {
    const relay = spawn(relayEnv(server, nats, { SLUICE_OUTBOX_TABLE: 'public.no_such_outbox' }));
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain(
      'the outbox table public.no_such_outbox (SLUICE_OUTBOX_TABLE) does not exist',
    );
    expect(relay.output()).toContain('SLUICE_OUTBOX_TABLE=none');
  });

  it('exits 1 naming outbox columns the table lacks, and how to map them', async () => {
    await server.query(
      'CREATE TABLE public.events_v1 (id uuid PRIMARY KEY, kind text, agg text, body jsonb)',
    );
    const relay = spawn(relayEnv(server, nats, { SLUICE_OUTBOX_TABLE: 'public.events_v1' }));
    expect((await relay.exited).code).toBe(1);
    const output = relay.output();
    // headers is optional: only the five required columns are named.
    expect(output).toContain(
      'the outbox table public.events_v1 has no column aggregatetype, aggregateid, type, payload',
    );
    expect(output).not.toContain('payload, headers');
    expect(output).toContain('SLUICE_OUTBOX_COLUMNS');
  });
});

describe('the outbox stream survives what the stream has to', () => {
  it('republishes nothing twice after a restart', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.orders' });
    const relay = await startRelay(env);
    await inTransaction(async (client) => {
      await insertOrder(client);
      await enqueue(client, { aggregateType: 'order', aggregateId: '9', type: 'OrderPlaced', payload: {} });
    });
    await exactly(env, 2);
    await relay.kill('SIGKILL');
    await startRelay(env);
    const marker = await inTransaction((client) =>
      enqueue(client, { aggregateType: 'marker', aggregateId: '9', type: 'Marker', payload: {} }),
    );
    const messages = await exactly(env, 3);
    expect(messages[2]?.headers['Nats-Msg-Id']).toBe(marker);
    expect((await readStream(nats.url, env.SLUICE_STREAM)).length).toBe(3);
  });
});

describe('sluice run in poll mode (SLUICE_MODE=poll)', () => {
  let app: pg.Pool;
  let database: string;
  beforeAll(async () => {
    database = 'poll_app';
    await server.query(`CREATE DATABASE ${database}`);
    app = new pg.Pool({
      connectionString: server.url(database),
      max: 2,
      application_name: 'outbox-relay-test',
    });
  });
  afterAll(async () => {
    await app?.end();
  });

  async function startPolling(env: Record<string, string>): Promise<RelayProcess> {
    const relay = spawn({ ...env, SLUICE_DATABASE_URL: server.url(database), SLUICE_MODE: 'poll' });
    await relay.waitForLog(/"msg":"polling"/);
    return relay;
  }

  async function appTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await app.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } finally {
      client.release();
    }
  }

  it('publishes the rows of sluice.outbox without a slot or publication, then deletes them', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: '' });
    await startPolling(env);

    const ids = await appTransaction((client) =>
      enqueue(client, [
        {
          aggregateType: 'order',
          aggregateId: '1',
          type: 'OrderPlaced',
          payload: { total: '5.00' },
          headers: { traceparent: 't-1' },
        },
        { aggregateType: 'order', aggregateId: '1', type: 'OrderPaid', payload: null },
      ]),
    );
    const big = randomUUID();
    await app.query(
      `INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
       VALUES ($1, 'ledger', 'acct-1', 'Credited', '{"amount": 12345678901234567890}')`,
      [big],
    );

    const messages = inTransactionOrder(await exactly(env, 3));
    const p = env.SLUICE_SUBJECT_PREFIX;
    expect(messages.map((m) => [m.subject, m.headers['Nats-Msg-Id'], m.body])).toEqual([
      [`${p}.outbox.order.OrderPlaced`, ids[0], '{"total": "5.00"}'],
      [`${p}.outbox.order.OrderPaid`, ids[1], 'null'],
      [`${p}.outbox.ledger.Credited`, big, '{"amount": 12345678901234567890}'],
    ]);
    expect(messages[0]?.headers['ce-type']).toBe('OrderPlaced');
    expect(messages[0]?.headers['ce-subject']).toBe('1');
    expect(messages[0]?.headers['traceparent']).toBe('t-1');
    expect(messages[0]?.headers['sluice-commit-lsn']).toBe(messages[1]?.headers['sluice-commit-lsn']);

    const slots = await server.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
      env.SLUICE_SLOT,
    ]);
    const publications = await server.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [
      env.SLUICE_PUBLICATION,
    ]);
    expect([slots, publications]).toEqual([[], []]);
    await waitFor(
      async () => (await app.query('SELECT count(*)::int AS n FROM sluice.outbox')).rows[0]?.n === 0,
      { message: 'published rows deleted from sluice.outbox' },
    );
  });

  it('polls a table without a headers column with no SLUICE_OUTBOX_COLUMNS: the column is detected as absent', async () => {
    await app.query(`CREATE TABLE public.plain_outbox (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload jsonb,
      txid xid8 NOT NULL DEFAULT pg_current_xact_id(), position bigint GENERATED ALWAYS AS IDENTITY)`);
    await app.query('CREATE INDEX ON public.plain_outbox (txid, position)');
    const env = relayEnv(server, nats, { SLUICE_TABLES: '', SLUICE_OUTBOX_TABLE: 'public.plain_outbox' });
    await startPolling(env);

    const id = await appTransaction((client) =>
      enqueue(
        client,
        { aggregateType: 'order', aggregateId: 3, type: 'OrderPlaced', payload: { n: 1 } },
        { table: 'public.plain_outbox', columns: { headers: null } },
      ),
    );

    const [message] = await exactly(env, 1);
    expect(message?.headers['Nats-Msg-Id']).toBe(id);
    expect(message?.headers['ce-subject']).toBe('3');
    expect(message?.body).toBe('{"n": 1}');
  });

  it('with SLUICE_POLL_CLEANUP=mark keeps published rows and sets published_at', async () => {
    const env = relayEnv(server, nats, { SLUICE_TABLES: '', SLUICE_POLL_CLEANUP: 'mark' });
    await startPolling(env);
    const id = await appTransaction((client) =>
      enqueue(client, { aggregateType: 'order', aggregateId: '2', type: 'OrderPlaced', payload: {} }),
    );

    const messages = await exactly(env, 1);
    expect(messages[0]?.headers['Nats-Msg-Id']).toBe(id);
    await waitFor(
      async () =>
        (await app.query('SELECT published_at IS NOT NULL AS marked FROM sluice.outbox WHERE id = $1', [id]))
          .rows[0]?.marked === true,
      { message: 'the published row marked' },
    );
  });
});
