import type { SourceInfo } from '@sluice/core';
import { emit, enqueue, outboxEventFromMessage, type PgQueryable } from '@sluice/outbox';
import { migrate } from '@sluice/schema';
import { type PostgresServer, startPostgres } from '@sluice/testkit';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { waitForConnectionsClosed } from './support/connections.js';
import { inTransaction as inPoolTransaction } from './support/transaction.js';

let server: PostgresServer;
let pool: pg.Pool;

beforeAll(async () => {
  server = await startPostgres({ database: 'app' });
  pool = new pg.Pool({ connectionString: server.url(), max: 4 });
  await migrate(pool);
  // Debezium's own outbox table, as an application that used Debezium already has it: no headers.
  await pool.query(`CREATE TABLE public.outbox (
    id uuid PRIMARY KEY, aggregatetype varchar(255) NOT NULL, aggregateid varchar(255) NOT NULL,
    type varchar(255) NOT NULL, payload jsonb)`);
  await pool.query('CREATE SCHEMA "Shop"');
  await pool.query(`CREATE TABLE "Shop"."Order Events" (
    "eventId" text PRIMARY KEY, "aggType" text NOT NULL, "aggId" text NOT NULL, "eventType" text NOT NULL,
    body jsonb, meta jsonb)`);
});

afterAll(async () => {
  await pool?.end();
  await waitForConnectionsClosed(server, "datname = 'app'");
  await server?.dispose();
});

beforeEach(async () => {
  await pool.query('TRUNCATE sluice.outbox, public.outbox, "Shop"."Order Events"');
});

const order = { aggregateType: 'order', aggregateId: '42', type: 'OrderPlaced', payload: { total: 9.5 } };

/** Runs `fn` in a transaction on one pooled client, as an application would. */
function inTransaction<T>(
  fn: (client: pg.PoolClient) => Promise<T>,
  outcome: 'COMMIT' | 'ROLLBACK' = 'COMMIT',
): Promise<T> {
  return inPoolTransaction(pool, fn, outcome);
}

async function outboxRows(table = 'sluice.outbox') {
  const { rows } = await pool.query(`SELECT * FROM ${table} ORDER BY aggregateid`);
  return rows;
}

describe('enqueue with a pg client', () => {
  it('writes one event inside the caller’s transaction, with a generated UUID', async () => {
    const id = await inTransaction((client) =>
      enqueue(client, { ...order, headers: { traceparent: '00-1-01' } }),
    );

    const rows = await outboxRows();
    expect(rows).toEqual([
      {
        id,
        aggregatetype: 'order',
        aggregateid: '42',
        type: 'OrderPlaced',
        payload: { total: 9.5 },
        headers: { traceparent: '00-1-01' },
        created_at: expect.any(Date),
        txid: expect.any(String),
        position: expect.any(String),
        published_at: null,
      },
    ]);
  });

  it('writes a batch with one INSERT statement and returns the ids in order', async () => {
    let statements = 0;
    const events = [1, 2, 3].map((n) => ({ ...order, aggregateId: `a${n}`, payload: { n } }));

    const ids = await inTransaction((client) => {
      const counting: PgQueryable = {
        query: (text, values) => {
          statements += 1;
          return client.query(text, values);
        },
      };
      return enqueue(counting, events);
    });

    expect(statements).toBe(1);
    expect(new Set(ids).size).toBe(3);
    const rows = await outboxRows();
    expect(rows.map((r) => [r.id, r.aggregateid, r.payload])).toEqual([
      [ids[0], 'a1', { n: 1 }],
      [ids[1], 'a2', { n: 2 }],
      [ids[2], 'a3', { n: 3 }],
    ]);
  });

  it('leaves nothing behind when the transaction rolls back', async () => {
    await inTransaction((client) => enqueue(client, [order, order]), 'ROLLBACK');

    expect(await outboxRows()).toEqual([]);
  });

  it('fails the transaction on a duplicate id, so a retried enqueue with the same id cannot double-publish', async () => {
    await inTransaction((client) =>
      enqueue(client, { ...order, id: '00000000-0000-4000-8000-000000000001' }),
    );

    await expect(
      inTransaction((client) => enqueue(client, { ...order, id: '00000000-0000-4000-8000-000000000001' })),
    ).rejects.toThrow(/duplicate key/);
    expect(await outboxRows()).toHaveLength(1);
  });
});

describe('enqueue with drizzle', () => {
  it('writes inside drizzle(pool).transaction', async () => {
    const db = drizzle({ client: pool });

    const ids = await db.transaction(async (tx) =>
      enqueue(tx, [
        { ...order, aggregateId: 'd1' },
        { ...order, aggregateId: 'd2', headers: { source: 'drizzle' } },
      ]),
    );

    const rows = await outboxRows();
    expect(rows.map((r) => [r.id, r.aggregateid, r.headers])).toEqual([
      [ids[0], 'd1', null],
      [ids[1], 'd2', { source: 'drizzle' }],
    ]);
  });

  it('rolls back with the drizzle transaction', async () => {
    const db = drizzle({ client: pool });

    await expect(
      db.transaction(async (tx) => {
        await enqueue(tx, order);
        throw new Error('business rule failed after enqueue');
      }),
    ).rejects.toThrow('business rule failed');

    expect(await outboxRows()).toEqual([]);
  });
});

describe('enqueue into an existing table', () => {
  it('writes a Debezium-shaped public.outbox that has no headers column', async () => {
    const id = await inTransaction((client) =>
      enqueue(client, order, { table: 'public.outbox', columns: { headers: null } }),
    );

    expect(await outboxRows('public.outbox')).toEqual([
      { id, aggregatetype: 'order', aggregateid: '42', type: 'OrderPlaced', payload: { total: 9.5 } },
    ]);
  });

  it('writes a numeric aggregateId as its decimal text, into a text column and into a bigint one', async () => {
    await pool.query(`CREATE TABLE IF NOT EXISTS public.int_outbox (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid bigint NOT NULL, type text NOT NULL, payload jsonb)`);
    await inTransaction(async (client) => {
      await enqueue(client, [
        { ...order, aggregateId: 7 },
        { ...order, aggregateId: 12345678901234567890n },
      ]);
      await enqueue(
        client,
        { ...order, aggregateId: 9007199254740993n },
        {
          table: 'public.int_outbox',
          columns: { headers: null },
        },
      );
    });

    expect((await outboxRows()).map((r) => r.aggregateid)).toEqual(['12345678901234567890', '7']);
    const { rows } = await pool.query<{ id: string }>(
      'SELECT aggregateid::text AS id FROM public.int_outbox',
    );
    expect(rows).toEqual([{ id: '9007199254740993' }]);
  });

  it('maps renamed, mixed-case columns of a table whose names need quoting', async () => {
    const columns = {
      id: 'eventId',
      aggregateType: 'aggType',
      aggregateId: 'aggId',
      type: 'eventType',
      payload: 'body',
      headers: 'meta',
    };

    const id = await inTransaction((client) =>
      enqueue(
        client,
        { ...order, id: 'evt-1', headers: { h: 'v' } },
        { table: { schema: 'Shop', name: 'Order Events' }, columns },
      ),
    );

    expect(id).toBe('evt-1');
    const { rows } = await pool.query('SELECT * FROM "Shop"."Order Events"');
    expect(rows).toEqual([
      {
        eventId: 'evt-1',
        aggType: 'order',
        aggId: '42',
        eventType: 'OrderPlaced',
        body: { total: 9.5 },
        meta: { h: 'v' },
      },
    ]);
  });
});

/** A test_decoding slot shows, as text, what the WAL carries for the relay. */
async function withSlot(name: string, fn: () => Promise<void>): Promise<string[]> {
  await pool.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [name]);
  try {
    await fn();
    const { rows } = await pool.query<{ data: string }>(
      'SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)',
      [name],
    );
    return rows.map((r) => r.data);
  } finally {
    await pool.query('SELECT pg_drop_replication_slot($1)', [name]);
  }
}

describe('enqueue with deleteAfterInsert', () => {
  it('leaves the table empty after commit while the WAL still carries each insert', async () => {
    let ids: string[] = [];
    const changes = await withSlot('delete_after_insert', async () => {
      ids = await inTransaction((client) =>
        enqueue(client, [order, { ...order, aggregateId: '43' }], { deleteAfterInsert: true }),
      );
    });

    expect(await outboxRows()).toEqual([]);
    const inserts = changes.filter((c) => c.startsWith('table sluice.outbox: INSERT:'));
    const deletes = changes.filter((c) => c.startsWith('table sluice.outbox: DELETE:'));
    expect(inserts).toHaveLength(2);
    expect(inserts[0]).toContain(`id[uuid]:'${ids[0]}'`);
    expect(inserts[0]).toContain(`payload[jsonb]:'{"total": 9.5}'`);
    expect(deletes).toHaveLength(2);
  });
});

describe('emit', () => {
  const source: SourceInfo = {
    lsn: '0/0',
    commitLsn: '0/0',
    xid: null,
    commitTime: '2026-11-21T00:00:00.000Z',
    seq: 0,
    snapshot: null,
  };

  it('writes a transactional logical message with the prefix, which the relay transform reads back', async () => {
    let id = '';
    const changes = await withSlot('emit_message', async () => {
      id = await inTransaction((client) =>
        emit(client, { ...order, payload: { amount: '12345678901234567890' }, headers: { a: 'b' } }),
      );
    });

    const messages = changes.filter((c) => c.startsWith('message:'));
    expect(messages).toHaveLength(1);
    const match = /^message: transactional: 1 prefix: sluice\.outbox, sz: \d+ content:(.*)$/s.exec(
      messages[0] ?? '',
    );
    expect(match).not.toBeNull();
    expect(outboxEventFromMessage(match?.[1] ?? '', source)).toEqual({
      kind: 'outbox',
      id,
      aggregateType: 'order',
      aggregateId: '42',
      type: 'OrderPlaced',
      payload: '{"amount":"12345678901234567890"}',
      headers: { a: 'b' },
      source,
    });
    expect(await outboxRows()).toEqual([]);
  });

  it('writes through drizzle with a custom prefix, and nothing reaches the WAL decoder on rollback', async () => {
    const db = drizzle({ client: pool });
    const changes = await withSlot('emit_drizzle', async () => {
      await db.transaction((tx) => emit(tx, { ...order, aggregateId: 'kept' }, { prefix: 'app.events' }));
      await db
        .transaction(async (tx) => {
          await emit(tx, { ...order, aggregateId: 'rolled-back' }, { prefix: 'app.events' });
          tx.rollback();
        })
        .catch(() => undefined);
    });

    const messages = changes.filter((c) => c.startsWith('message:'));
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('prefix: app.events,');
    expect(messages[0]).toContain('"aggregateid":"kept"');
  });
});
