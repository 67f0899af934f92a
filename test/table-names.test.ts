import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { parseTableName, TableNameError } from '@sluice/core';
import { decodeSubjectToken } from '@sluice/sink-nats';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { type StoredMessage, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';

const { pg, nats, spawn, startRelay } = relayHarness();

/** The table `CREATE TABLE <sql>` made, found by a column name nothing else has. */
async function createdBy(sql: string, marker: string): Promise<{ schema: string; table: string }> {
  await pg.query(`CREATE TABLE ${sql} (${marker} int)`);
  const [row] = await pg.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE a.attname = $1`,
    [marker],
  );
  await pg.query(`DROP TABLE ${sql}`);
  return row as { schema: string; table: string };
}

describe('SLUICE_TABLES reads a name as Postgres does', () => {
  it('names the table Postgres creates for the same SQL text', async () => {
    await pg.query('CREATE SCHEMA "my.schema"; CREATE SCHEMA "we""ird"; CREATE SCHEMA "Ünïcode"');
    const written = [
      'Public.Orders',
      'public."Order Items"',
      '"my.schema"."a,b"',
      '"we""ird"."Ünïcode"',
      'Straße',
      'public . "Spaced Dot"',
      'U&"d\\0061t\\+000061"',
      '"Ünïcode".Ärger',
      `public.${'Long'.repeat(20)}`,
      `public."${'é'.repeat(40)}"`,
    ];
    for (const [i, sql] of written.entries()) {
      expect(parseTableName(sql), sql).toEqual(await createdBy(sql, `marker_${i}`));
    }
  });

  it('refuses what Postgres refuses', async () => {
    for (const sql of [
      'public.Order Items',
      'public."Unterminated',
      'public.',
      'public.""',
      'public.2024_orders',
    ]) {
      expect(() => parseTableName(sql), sql).toThrow(TableNameError);
      await expect(pg.query(`CREATE TABLE ${sql} (id int)`), sql).rejects.toThrow();
    }
    // Three parts: Postgres reads database.schema.table, which a table setting cannot name.
    expect(() => parseTableName('postgres.public.x')).toThrow(/3 dot-separated parts/);
  });
});

// Names that the old "anything else becomes _" rule merged or split, and that need quoting in SQL.
const TRICKY = [
  { schema: 'public', table: 'orders', sql: 'Public.Orders' },
  { schema: 'public', table: 'Order Items', sql: 'public."Order Items"' },
  { schema: 'my.schema', table: 'a,b', sql: '"my.schema"."a,b"' },
  { schema: 'my', table: 'schema.a,b', sql: 'my."schema.a,b"' },
  { schema: 'my_schema', table: 'a_b', sql: 'my_schema.a_b' },
  { schema: 'we"ird', table: 'Ünïcode', sql: '"we""ird"."Ünïcode"' },
  { schema: 'public', table: 'stars*and>arrows 100%', sql: 'public."stars*and>arrows 100%"' },
] as const;

const subjectOf = (prefix: string, schema: string, table: string, op: string) =>
  `${prefix}.cdc.${schema}.${table}.${op}`;

describe('sluice run with tricky table names (env vars only)', () => {
  it('captures every table, snapshot and stream, with one collision-free subject each and the real names in the envelope', async () => {
    await pg.query('CREATE SCHEMA IF NOT EXISTS "my.schema"; CREATE SCHEMA my; CREATE SCHEMA my_schema');
    await pg.query('CREATE SCHEMA IF NOT EXISTS "we""ird"');
    for (const t of TRICKY) {
      await pg.query(`CREATE TABLE ${t.sql} (id int PRIMARY KEY, note text)`);
      await pg.query(`INSERT INTO ${t.sql} VALUES (1, $1)`, [t.sql]);
    }
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: TRICKY.map((t) => t.sql).join(', '),
      SLUICE_SNAPSHOT: 'initial',
      SLUICE_OUTBOX_TABLE: 'none',
    });
    const relay = await startRelay(env);
    // Row 2 is written after the snapshot, which then reads row 1 alone.
    await relay.waitForLog(/"msg":"initial snapshot complete"/);
    for (const t of TRICKY) await pg.query(`INSERT INTO ${t.sql} VALUES (2, 'after')`);

    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, TRICKY.length * 2);
    expect(messages).toHaveLength(TRICKY.length * 2);
    const p = env.SLUICE_SUBJECT_PREFIX;
    const expected: Record<string, string> = {
      'public\u0000orders': 'public.orders',
      'public\u0000Order Items': 'public.Order%20Items',
      'my.schema\u0000a,b': 'my%2Eschema.a,b',
      'my\u0000schema.a,b': 'my.schema%2Ea,b',
      'my_schema\u0000a_b': 'my_schema.a_b',
      'we"ird\u0000Ünïcode': 'we"ird.Ünïcode',
      'public\u0000stars*and>arrows 100%': 'public.stars%2Aand%3Earrows%20100%25',
    };
    const subjects = new Map<string, string>();
    for (const m of messages) {
      const body = m.json();
      const key = `${body['schema']}\u0000${body['table']}`;
      const [schemaToken, tableToken] = expected[key]?.split('.') ?? [];
      expect(m.subject).toBe(subjectOf(p, schemaToken as string, tableToken as string, String(body['op'])));
      // A subscriber can read the names back from the subject too.
      const tokens = m.subject.split('.');
      expect(decodeSubjectToken(tokens[2] as string)).toBe(body['schema']);
      expect(decodeSubjectToken(tokens[3] as string)).toBe(body['table']);
      const other = subjects.get(m.subject.replace(/\.(read|insert)$/, ''));
      if (other !== undefined) expect(other).toBe(key);
      subjects.set(m.subject.replace(/\.(read|insert)$/, ''), key);
    }
    expect(subjects.size).toBe(TRICKY.length);
    const reads = messages.filter((m) => m.json()['op'] === 'read');
    // Each table read once: "my.schema"."a,b" and my."schema.a,b" are two tables, not one read twice.
    expect(new Set(reads.map((m) => `${m.json()['schema']}\u0000${m.json()['table']}`))).toEqual(
      new Set(TRICKY.map((t) => `${t.schema}\u0000${t.table}`)),
    );
    // ...and each read carries its own table's row.
    for (const m of reads) {
      const table = TRICKY.find((t) => t.schema === m.json()['schema'] && t.table === m.json()['table']);
      expect((m.json()['after'] as { note: string }).note).toBe(table?.sql);
    }
    const ceSubjects = new Set(messages.map((m) => m.headers['ce-subject']));
    expect(ceSubjects).toEqual(
      new Set([
        'public.orders',
        'public."Order Items"',
        '"my.schema"."a,b"',
        'my."schema.a,b"',
        'my_schema.a_b',
        '"we""ird"."Ünïcode"',
        'public."stars*and>arrows 100%"',
      ]),
    );

    // A wildcard consumer on one escaped schema gets exactly that schema's tables.
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const filter = `${p}.cdc.my%2Eschema.>`;
      await jsm.consumers.add(env.SLUICE_STREAM, {
        durable_name: 'dotted_schema',
        filter_subject: filter,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
      });
      const consumer = await jetstream(nc).consumers.get(env.SLUICE_STREAM, 'dotted_schema');
      const got: StoredMessage[] = [];
      const batch = await consumer.fetch({ max_messages: 10, expires: 2000 });
      for await (const m of batch) {
        got.push({ seq: m.seq, subject: m.subject, headers: {}, body: m.string(), json: () => m.json() });
        m.ack();
      }
      // The snapshot's read and the streamed insert may come in either order.
      expect(got.map((m) => [m.json()['schema'], m.json()['table'], m.json()['op']]).sort()).toEqual([
        ['my.schema', 'a,b', 'insert'],
        ['my.schema', 'a,b', 'read'],
      ]);
    } finally {
      await nc.close();
    }
  });

  it('reads exact { schema, table } names from the config file', async () => {
    await pg.query(`CREATE SCHEMA "Cfg.Schema"`);
    await pg.query(`CREATE TABLE "Cfg.Schema"."Quote "" and, comma" (id int PRIMARY KEY)`);
    const file = join(tmpdir(), `sluice-names-${process.pid}.json`);
    writeFileSync(file, JSON.stringify({ tables: [{ schema: 'Cfg.Schema', table: 'Quote " and, comma' }] }));
    const env = relayEnv(pg, nats, { SLUICE_CONFIG: file, SLUICE_OUTBOX_TABLE: 'none' });
    await startRelay(env);
    await pg.query(`INSERT INTO "Cfg.Schema"."Quote "" and, comma" VALUES (7)`);
    const [message] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(message?.subject).toBe(
      `${env.SLUICE_SUBJECT_PREFIX}.cdc.Cfg%2ESchema.Quote%20"%20and,%20comma.insert`,
    );
    expect(message?.json()).toMatchObject({ schema: 'Cfg.Schema', table: 'Quote " and, comma' });
  });

  it('exits 2 quoting a bad entry as written, before creating anything', async () => {
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.orders, public."Order Items' });
    const relay = spawn(env);
    expect((await relay.exited).code).toBe(2);
    expect(relay.output()).toContain(
      '`public."Order Items` has a double quote at character 8 that is never closed; end the quoted name with another double quote, e.g. public."Order Items"',
    );
    expect(
      await pg.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [env.SLUICE_SLOT]),
    ).toEqual([]);
  });
});

describe('a table that is missing only because of case', () => {
  it('exits 2 suggesting the quoted name', async () => {
    await pg.query('CREATE TABLE public."Invoices" (id int PRIMARY KEY)');
    const relay = spawn(
      relayEnv(pg, nats, { SLUICE_TABLES: 'public.Invoices', SLUICE_OUTBOX_TABLE: 'none' }),
    );
    expect((await relay.exited).code).toBe(2);
    expect(relay.output()).toContain('table public.invoices not found in');
    expect(relay.output()).toContain(
      'did you mean public."Invoices"? Names are read as SQL: unquoted names fold to lower case, so double-quote a name to keep its case',
    );
  });
});

describe('outbox tables and values with tricky names', () => {
  it('relays a quoted outbox table, escaping aggregate type, type and a long aggregate id into one token each', async () => {
    await pg.query('CREATE SCHEMA "Out.Box"');
    await pg.query(`CREATE TABLE "Out.Box"."Events Table" (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL,
      payload jsonb, headers jsonb)`);
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: '',
      SLUICE_OUTBOX_TABLE: '"Out.Box"."Events Table"',
      SLUICE_OUTBOX_SUBJECT: '{prefix}.o.{aggregatetype}.{type}.{aggregateid}',
    });
    await startRelay(env);
    const longId = `tenant.${'x'.repeat(400)}`;
    await pg.query(
      `INSERT INTO "Out.Box"."Events Table" VALUES
        ('5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10', 'order.v2', '42', 'Order Paid', '{}', '{}'),
        ('5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a11', 'order.v2', $1, 'Order Paid', '{}', '{}')`,
      [longId],
    );
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    const p = env.SLUICE_SUBJECT_PREFIX;
    expect(messages[0]?.subject).toBe(`${p}.o.order%2Ev2.Order%20Paid.42`);
    const long = messages[1]?.subject.split('.').at(-1) as string;
    expect(long).toMatch(/^tenant%2Ex+%~[0-9a-f]{32}$/);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(192);
    // The real values travel in the headers.
    expect(messages[1]?.headers['ce-type']).toBe('Order Paid');
    expect(messages[1]?.headers['ce-subject']).toBe(longId);
  });
});
