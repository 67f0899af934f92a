import { ConfigError } from '@sluice/core';
import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { emit, enqueue } from './enqueue.js';
import { InvalidOutboxEventError } from './errors.js';
import type { DrizzleExecutor, PgQueryable } from './executor.js';

// Unit tests of the statements only; test/outbox-api.test.ts runs them against a real Postgres.

interface Query {
  text: string;
  values: unknown[];
}

function recordingClient(): PgQueryable & { queries: Query[] } {
  const queries: Query[] = [];
  return {
    queries,
    async query(text: string, values: unknown[] = []) {
      queries.push({ text, values });
      return { rows: [] };
    },
  };
}

function recordingDrizzle(): DrizzleExecutor & { queries: Query[] } {
  const dialect = new PgDialect();
  const queries: Query[] = [];
  return {
    queries,
    // A drizzle database has `query` too (relational queries): it must not be mistaken for pg.
    query: {},
    async execute(query: SQL) {
      const { sql, params } = dialect.sqlToQuery(query);
      queries.push({ text: sql, values: params });
      return { rows: [] };
    },
  } as DrizzleExecutor & { queries: Query[] };
}

const order = { aggregateType: 'order', aggregateId: '42', type: 'OrderPlaced', payload: { total: 9.5 } };

describe('enqueue', () => {
  it('inserts one event with bound parameters and a generated UUID', async () => {
    const client = recordingClient();

    const id = await enqueue(client, { ...order, headers: { traceparent: 't' } });

    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(client.queries).toEqual([
      {
        text: 'INSERT INTO "sluice"."outbox" ("id", "aggregatetype", "aggregateid", "type", "payload", "headers") VALUES ($1, $2, $3, $4, $5, $6)',
        values: [id, 'order', '42', 'OrderPlaced', '{"total":9.5}', '{"traceparent":"t"}'],
      },
    ]);
  });

  it('inserts a batch as one multi-row statement and returns ids in order, keeping given ids', async () => {
    const client = recordingClient();

    const ids = await enqueue(client, [{ ...order, id: 'fixed-1' }, order, { ...order, payload: undefined }]);

    expect(ids).toHaveLength(3);
    expect(ids[0]).toBe('fixed-1');
    expect(new Set(ids).size).toBe(3);
    expect(client.queries).toHaveLength(1);
    expect(client.queries[0]?.text).toMatch(/VALUES \(\$1, .*, \$6\), \(\$7, .*\), \(\$13, .*, \$18\)$/);
    expect(client.queries[0]?.values.filter((_, i) => i % 6 === 4)).toEqual([
      '{"total":9.5}',
      '{"total":9.5}',
      null,
    ]);
  });

  it('does nothing for an empty batch', async () => {
    const client = recordingClient();
    expect(await enqueue(client, [])).toEqual([]);
    expect(client.queries).toEqual([]);
  });

  it('renders the same statement through drizzle', async () => {
    const db = recordingDrizzle();
    const client = recordingClient();

    const id = await enqueue(db, { ...order, id: 'e-1' });
    await enqueue(client, { ...order, id: 'e-1' });

    expect(id).toBe('e-1');
    expect(db.queries).toEqual(client.queries);
  });

  it('quotes a custom table and columns, and leaves out a headers column the table lacks', async () => {
    const client = recordingClient();

    await enqueue(client, order, {
      table: 'public."Outbox""Events"',
      columns: { aggregateType: 'AggregateType', headers: null },
    });

    expect(client.queries[0]?.text).toBe(
      'INSERT INTO "public"."Outbox""Events" ("id", "AggregateType", "aggregateid", "type", "payload") VALUES ($1, $2, $3, $4, $5)',
    );
  });

  it('refuses headers when the table has no headers column, rather than dropping them', async () => {
    const client = recordingClient();
    await expect(
      enqueue(client, { ...order, headers: { a: 'b' } }, { columns: { headers: null } }),
    ).rejects.toThrow(InvalidOutboxEventError);
    expect(client.queries).toEqual([]);
  });

  it('deletes the same rows right after inserting them when deleteAfterInsert is set', async () => {
    const client = recordingClient();

    const ids = await enqueue(client, [order, order], { deleteAfterInsert: true });

    expect(client.queries[1]).toEqual({
      text: 'DELETE FROM "sluice"."outbox" WHERE "id" IN ($1, $2)',
      values: ids,
    });
  });

  it('validates every event before writing any, naming the event and the field', async () => {
    const client = recordingClient();
    const bad = { ...order, aggregateId: '' };

    const err = await enqueue(client, [order, bad]).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(InvalidOutboxEventError);
    expect((err as InvalidOutboxEventError).field).toBe('aggregateId');
    expect((err as Error).message).toMatch(
      /^outbox event #1: aggregateId must be a non-empty string, got "" \(string\)/,
    );
    await expect(enqueue(client, { ...order, payload: { n: 1n } })).rejects.toThrow(/not JSON-serialisable/);
    await expect(
      enqueue(client, { ...order, headers: { n: 1 } as unknown as Record<string, string> }),
    ).rejects.toThrow(/header "n" must be a string/);
    expect(client.queries).toEqual([]);
  });

  it('writes a numeric aggregateId (a safe integer or a bigint) as its decimal string', async () => {
    const client = recordingClient();

    await enqueue(client, [
      { ...order, aggregateId: 42 },
      { ...order, aggregateId: -7 },
      { ...order, aggregateId: 12345678901234567890n },
      { ...order, aggregateId: 0n },
    ]);

    expect(client.queries[0]?.values.filter((_, i) => i % 6 === 2)).toEqual([
      '42',
      '-7',
      '12345678901234567890',
      '0',
    ]);
  });

  it('refuses a number aggregateId that is not a safe integer, saying to pass a bigint or a string', async () => {
    const client = recordingClient();
    const err = await enqueue(client, { ...order, aggregateId: 2 ** 53 + 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOutboxEventError);
    expect((err as Error).message).toMatch(
      /^outbox event #0: aggregateId must be a non-empty string, a bigint or a safe integer, got 9007199254740994 \(number\)/,
    );
    expect((err as Error).message).toMatch(/pass the id as a bigint or a string/);
    await expect(enqueue(client, { ...order, aggregateId: 1.5 })).rejects.toThrow(/safe integer, got 1.5/);
    await expect(enqueue(client, { ...order, aggregateId: Number.NaN })).rejects.toThrow(/safe integer/);
    expect(client.queries).toEqual([]);
  });

  it('refuses a pg Pool, whose queries would escape the transaction', async () => {
    const pool = { totalCount: 0, query: async () => ({ rows: [] }) };
    await expect(enqueue(pool, order)).rejects.toThrow(ConfigError);
    await expect(enqueue(pool, order)).rejects.toThrow(/pass the transaction's client/);
  });
});

describe('emit', () => {
  it('emits a transactional logical message with the prefix and the Debezium-named JSON', async () => {
    const client = recordingClient();

    const id = await emit(client, { ...order, id: 'e-1', headers: { a: 'b' } });

    expect(id).toBe('e-1');
    expect(client.queries).toEqual([
      {
        text: 'SELECT pg_logical_emit_message(true, $1::text, $2::text)',
        values: [
          'sluice.outbox',
          '{"id":"e-1","aggregatetype":"order","aggregateid":"42","type":"OrderPlaced","payload":{"total":9.5},"headers":{"a":"b"}}',
        ],
      },
    ]);
  });

  it('emits one message per event, in order, with a custom prefix', async () => {
    const client = recordingClient();

    const ids = await emit(client, [order, { ...order, payload: undefined }], { prefix: 'app.events' });

    expect(ids).toHaveLength(2);
    expect(client.queries.map((q) => q.values[0])).toEqual(['app.events', 'app.events']);
    expect(JSON.parse(client.queries[1]?.values[1] as string)).toMatchObject({
      id: ids[1],
      payload: null,
      headers: null,
    });
  });

  it('writes a bigint aggregateId as its decimal string in the message', async () => {
    const client = recordingClient();
    await emit(client, { ...order, id: 'e-2', aggregateId: 9007199254740993n });
    expect(client.queries[0]?.values[1]).toContain('"aggregateid":"9007199254740993"');
  });

  it('refuses an empty prefix', async () => {
    await expect(emit(recordingClient(), order, { prefix: '' })).rejects.toThrow(/^prefix: /);
  });
});
