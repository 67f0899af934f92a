import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { freePort, waitFor } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { EVENT_HEADERS, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';

const { pg, nats, spawn, startRelay } = relayHarness();

/** The headers of a row change with CloudEvents on, besides commit ordering's expectation. */

describe('sluice run streams row changes to JetStream', () => {
  it('publishes insert, update, delete and truncate of every value-layer type with the documented envelope', async () => {
    await pg.query(`CREATE TYPE mood AS ENUM ('sad', 'happy')`);
    await pg.query(`CREATE TABLE public.all_types (
      id int8 PRIMARY KEY, b bool, i2 int2, i4 int4, f4 float4, f8 float8, n numeric, t text, vc varchar(20),
      ch char(3), u uuid, j json, jb jsonb, by bytea, d date, tm time, ts timestamp, tstz timestamptz,
      iv interval, m mood, a_i4 int4[], a_t text[], a_nested int4[][])`);
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.all_types' });
    await startRelay(env);

    await pg.query(`INSERT INTO public.all_types VALUES (
      9007199254740993, true, -32768, 2147483647, 1.5, 'NaN', 12345678901234567890.123456789, 'héllo "q"', 'vc',
      'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}', '\\xdeadbeef',
      '2024-02-29', '13:14:15.5', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456+05:30',
      '1 year 2 mons 3 days 04:05:06.5', 'happy', '{1,NULL,3}', '{"a,b","c\\"d",NULL}', '{{1,2},{3,4}}')`);
    await pg.query(`UPDATE public.all_types SET t = 'changed', i4 = 1 WHERE id = 9007199254740993`);
    await pg.query('DELETE FROM public.all_types WHERE id = 9007199254740993');
    await pg.query('TRUNCATE public.all_types');

    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 4);
    const p = env.SLUICE_SUBJECT_PREFIX;
    expect(messages.map((m) => m.subject)).toEqual([
      `${p}.cdc.public.all_types.insert`,
      `${p}.cdc.public.all_types.update`,
      `${p}.cdc.public.all_types.delete`,
      `${p}.cdc.public.all_types.truncate`,
    ]);
    const [insert, update, del, truncate] = messages.map((m) => m.json());
    expect(insert).toMatchObject({
      op: 'insert',
      schema: 'public',
      table: 'all_types',
      key: { id: '9007199254740993' },
      before: null,
      unchanged: [],
      after: {
        id: '9007199254740993',
        b: true,
        i2: -32768,
        i4: 2147483647,
        f4: 1.5,
        f8: 'NaN',
        n: '12345678901234567890.123456789',
        t: 'héllo "q"',
        vc: 'vc',
        ch: 'ab ',
        u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        j: { a: [1, 2] },
        jb: { b: { c: null } },
        by: '3q2+7w==',
        d: '2024-02-29',
        tm: '13:14:15.5',
        ts: '2024-01-02T03:04:05.123456',
        tstz: '2024-01-01T21:34:05.123456Z',
        iv: 'P1Y2M3DT4H5M6.5S',
        m: 'happy',
        a_i4: [1, null, 3],
        a_t: ['a,b', 'c"d', null],
        a_nested: [
          [1, 2],
          [3, 4],
        ],
      },
    });
    expect(update).toMatchObject({
      op: 'update',
      key: { id: '9007199254740993' },
      after: { t: 'changed', i4: 1 },
    });
    expect(del).toMatchObject({ op: 'delete', key: { id: '9007199254740993' }, after: null });
    expect(truncate).toMatchObject({ op: 'truncate', key: null, before: null, after: null });

    for (const m of messages) {
      const source = m.json()['source'] as Record<string, unknown>;
      expect(m.headers['Nats-Msg-Id']).toBe(`${env.SLUICE_SLOT}:${source['commitLsn']}:${source['seq']}`);
      expect(m.headers['ce-id']).toBe(m.headers['Nats-Msg-Id']);
      expect(m.headers['ce-specversion']).toBe('1.0');
      expect(m.headers['content-type']).toBe('application/json');
      expect(m.headers['ce-subject']).toBe('public.all_types');
      expect(m.headers['ce-type']).toBeTruthy();
      expect(m.headers['ce-time']).toBe(source['commitTime']);
      expect(source['snapshot']).toBeNull();
    }
    // Every header a row change carries (docs/events.md#headers), and nothing else. The commit-order
    // expectation is a JetStream control header that nats-server checks and stores as sent: the
    // first message of an empty stream expects its last sequence (0), each later one its predecessor.
    messages.forEach((m, i) => {
      const expectation =
        i === 0
          ? { 'Nats-Expected-Last-Sequence': '0' }
          : { 'Nats-Expected-Last-Msg-Id': messages[i - 1]?.headers['Nats-Msg-Id'] as string };
      expect(Object.keys(m.headers).sort()).toEqual([...EVENT_HEADERS, ...Object.keys(expectation)].sort());
      expect(m.headers).toMatchObject({
        ...expectation,
        'Nats-Expected-Stream': env.SLUICE_STREAM,
        'ce-source': `sluice/${env.SLUICE_STREAM}`,
        'ce-type': `io.sluice.cdc.${(m.json() as { op: string }).op}`,
      });
    });
  });

  it('reports unchanged TOAST columns in `unchanged`, never as null', async () => {
    await pg.query('CREATE TABLE public.docs (id int PRIMARY KEY, title text, body text)');
    await pg.query('ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.docs' });
    await startRelay(env);
    await pg.query(
      `INSERT INTO public.docs SELECT 1, 'first', string_agg(md5(g::text), '') FROM generate_series(1, 400) g`,
    );
    await pg.query(`UPDATE public.docs SET title = 'second' WHERE id = 1`);

    const [insert, update] = (await waitForMessages(nats.url, env.SLUICE_STREAM, 2)).map((m) => m.json()) as [
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    expect((insert['after'] as Record<string, string>)['body']).toHaveLength(400 * 32);
    expect(update['unchanged']).toEqual(['body']);
    expect(update['after']).toEqual({ id: 1, title: 'second' });
    expect(Object.hasOwn(update['after'] as object, 'body')).toBe(false);
  });

  it('with SLUICE_CLOUDEVENTS=off sends a row change with only its id, expected stream and commit-order expectation, the same body', async () => {
    await pg.query('CREATE TABLE public.lean (id int PRIMARY KEY, note text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.lean', SLUICE_CLOUDEVENTS: 'off' });
    await startRelay(env);
    await pg.query(`INSERT INTO public.lean VALUES (1, 'a'), (2, 'b')`);

    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    for (const [i, m] of messages.entries()) {
      // Besides the two, commit ordering's expectation: the stream's last sequence, then the predecessor.
      const expectation = i === 0 ? 'Nats-Expected-Last-Sequence' : 'Nats-Expected-Last-Msg-Id';
      expect(Object.keys(m.headers).sort()).toEqual(
        ['Nats-Expected-Stream', 'Nats-Msg-Id', expectation].sort(),
      );
      expect(m.headers['Nats-Expected-Stream']).toBe(env.SLUICE_STREAM);
      const body = m.json() as { op: string; after: unknown; source: { seq: number; commitLsn: string } };
      expect(m.headers['Nats-Msg-Id']).toBe(`${env.SLUICE_SLOT}:${body.source.commitLsn}:${i}`);
      expect(body).toMatchObject({ op: 'insert', after: { id: i + 1 }, source: { seq: i } });
    }
  });

  it('picks up ALTER TABLE mid-stream before the next row', async () => {
    await pg.query('CREATE TABLE public.evolving (id int PRIMARY KEY, a text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.evolving' });
    await startRelay(env);
    await pg.query(`INSERT INTO public.evolving VALUES (1, 'x')`);
    await pg.query('ALTER TABLE public.evolving ADD COLUMN b int4 DEFAULT 7, DROP COLUMN a');
    await pg.query('INSERT INTO public.evolving VALUES (2, 8)');

    const [first, second] = (await waitForMessages(nats.url, env.SLUICE_STREAM, 2)).map((m) => m.json());
    expect(first?.['after']).toEqual({ id: 1, a: 'x' });
    expect(second?.['after']).toEqual({ id: 2, b: 8 });
  });

  it('advances confirmed_flush_lsn on a database where only other databases write', async () => {
    await pg.query('CREATE TABLE public.quiet (id int PRIMARY KEY)');
    await pg.query('CREATE DATABASE other');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.quiet', SLUICE_HEARTBEAT_INTERVAL: '500ms' });
    await startRelay(env);
    const other = pg.url('other');
    const { default: pgClient } = await import('pg');
    const client = new pgClient.Client({ connectionString: other });
    await client.connect();
    await client.query('CREATE TABLE busy (v int)');
    await client.query('INSERT INTO busy SELECT generate_series(1, 1000)');
    const [{ lsn }] = (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))
      .rows as [{ lsn: string }];
    await client.end();

    await waitFor(
      async () => {
        const rows = await pg.query<{ advanced: boolean }>(
          'SELECT confirmed_flush_lsn >= $1::pg_lsn AS advanced FROM pg_replication_slots WHERE slot_name = $2',
          [lsn, env.SLUICE_SLOT],
        );
        return rows[0]?.advanced;
      },
      { timeoutMs: 30_000, message: `confirmed_flush_lsn of ${env.SLUICE_SLOT} to pass ${lsn}` },
    );
  });

  it('on SIGTERM finishes in-flight events, confirms them to the slot and exits 0', async () => {
    await pg.query('CREATE TABLE public.graceful (id int PRIMARY KEY)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.graceful' });
    const relay = await startRelay(env);
    for (let i = 0; i < 20; i++)
      await pg.query('INSERT INTO public.graceful SELECT g FROM generate_series($1::int, $1::int + 49) g', [
        i * 50,
      ]);
    const [{ lsn }] = (await pg.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')) as [
      { lsn: string },
    ];
    await waitForMessages(nats.url, env.SLUICE_STREAM, 1000);
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
    const [slot] = await pg.query<{ done: boolean; active: boolean }>(
      'SELECT confirmed_flush_lsn >= $1::pg_lsn AS done, active FROM pg_replication_slots WHERE slot_name = $2',
      [lsn, env.SLUICE_SLOT],
    );
    expect(slot).toEqual({ done: true, active: false });
  });

  it('with SLUICE_SINK=stdout writes one envelope per line to stdout and its logs to stderr', async () => {
    await pg.query('CREATE TABLE public.piped (id int PRIMARY KEY, name text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.piped', SLUICE_SINK: 'stdout' });
    const relay = await startRelay(env);
    await pg.query(`INSERT INTO public.piped VALUES (1, 'a'), (2, 'b')`);
    await waitFor(() => relay.stdoutLines.length >= 2, { timeoutMs: 30_000, message: 'two NDJSON lines' });
    const events = relay.stdoutLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => [e['kind'], e['op'], (e['after'] as { id: number }).id])).toEqual([
      ['change', 'insert', 1],
      ['change', 'insert', 2],
    ]);
    expect(events[0]?.['id']).toMatch(new RegExp(`^${env.SLUICE_SLOT}:[0-9A-F]+/[0-9A-F]+:0$`));
    expect(relay.lines.some((l) => l.includes('"msg":"streaming from the replication slot"'))).toBe(true);
  });

  it('a second relay on the same slot stays not ready, names the holder, and takes over when the first stops', async () => {
    await pg.query('CREATE TABLE public.standby (id int PRIMARY KEY)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.standby' });
    const active = await startRelay(env);
    const port = await freePort();
    const standby = spawn({ ...env, SLUICE_HTTP_PORT: String(port) });
    await standby.waitForLog(/replication slot .* is held by pid \d+/);
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(res.status).toBe(503);
    expect(JSON.stringify(await res.json())).toMatch(/held by pid \d+/);

    await active.kill('SIGTERM');
    await standby.waitForLog(/"msg":"streaming from the replication slot"/, 30_000);
    await pg.query('INSERT INTO public.standby VALUES (1)');
    const [message] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(message?.json()).toMatchObject({ op: 'insert', after: { id: 1 } });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, {
      message: 'the standby to become ready',
    });
  });
});

describe('sluice run resuming after more than the duplicate window', () => {
  it('says so in the log and sluice_resumes_beyond_dedupe_window_total, and stores a replay once (by position)', async () => {
    await pg.query('CREATE TABLE public.window_rows (id int PRIMARY KEY, v text)');
    const port = await freePort();
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.window_rows',
      SLUICE_DUPLICATE_WINDOW: '1s',
      SLUICE_HTTP_HOST: '127.0.0.1',
      SLUICE_HTTP_PORT: String(port),
    });
    const first = await startRelay(env);
    await pg.query(`INSERT INTO public.window_rows SELECT g, 'a' FROM generate_series(1, 50) g`);
    await waitForMessages(nats.url, env.SLUICE_STREAM, 50);
    // SIGKILL: the slot may not have been told about the last events, so the next relay replays them.
    await first.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 2_000));

    const second = await startRelay(env);
    await second.waitForLog(/older than the duplicate window/, 30_000);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_resumes_beyond_dedupe_window_total(\{[^}]*\})? 1$/m);
    await pg.query(`INSERT INTO public.window_rows SELECT g, 'b' FROM generate_series(51, 60) g`);
    const stored = await waitForMessages(nats.url, env.SLUICE_STREAM, 60);
    const ids = stored.map((m) => m.headers['Nats-Msg-Id']);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(60);
  }, 120_000);
});

describe('sluice run with another writer on its stream (SLUICE_ORDERING=commit)', () => {
  it('stops publishing and says which message it did not write and what to do', async () => {
    await pg.query('CREATE TABLE public.shared_rows (id int PRIMARY KEY)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.shared_rows' });
    const relay = await startRelay(env);
    await pg.query('INSERT INTO public.shared_rows VALUES (1)');
    const [first] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    // Someone else publishes into the relay's stream, on one of its subjects.
    const other = await connect({ servers: nats.url });
    try {
      const h = natsHeaders();
      h.set('Nats-Msg-Id', 'someone-else-1');
      await other.request(first?.subject as string, 'x', { headers: h, timeout: 5_000 });
    } finally {
      await other.close();
    }
    await pg.query('INSERT INTO public.shared_rows VALUES (2)');
    await relay.waitForLog(/has a message the relay did not write/, 30_000);
    const output = relay.output();
    expect(output).toMatch(/Nats-Msg-Id \\"someone-else-1\\"/);
    expect(output).toMatch(/SLUICE_ORDERING=commit needs the relay to be the only writer of its stream/);
    // The relay's second event is not stored behind the stranger's message.
    const stored = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    expect(stored.map((m) => m.headers['Nats-Msg-Id'])).toEqual([
      first?.headers['Nats-Msg-Id'],
      'someone-else-1',
    ]);
    // Nor later: the relay holds its events, alive, until the operator sorts the stream out.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(relay.child.exitCode).toBeNull();
    expect(await waitForMessages(nats.url, env.SLUICE_STREAM, 2)).toHaveLength(2);
  }, 120_000);
});
