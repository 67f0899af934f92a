// End to end, as a user runs it: `sluice run` (child process, env only) and a real JetStream
// consumer. (1) The values property for one seed: snapshot `read` events, inserts and REPLICA
// IDENTITY FULL updates of every type carry each value as Postgres holds it (the rules and the
// generators are test/support/pg-values.ts; SLUICE_VALUES_SEED picks another seed). (2) `changed`.
import { type NatsServer, type PostgresServer, startNats, startPostgres } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { member, parseExact } from './support/exact-json.js';
import { type StoredMessage, waitForMessages } from './support/jetstream.js';
import {
  COLUMNS,
  compareRow,
  type Expected,
  exactForm,
  expectedRows,
  generateChanges,
  generateRow,
  insertSql,
  random,
  TYPE_SETUP,
  tableSql,
  updateSql,
} from './support/pg-values.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

const SEED = Number(process.env['SLUICE_VALUES_SEED'] ?? 7);
const ROWS = 10;

let server: PostgresServer;
let nats: NatsServer;
let pool: pg.Pool;
const relays: RelayProcess[] = [];

beforeAll(async () => {
  [server, nats] = await Promise.all([
    startPostgres({ settings: { TimeZone: 'Asia/Kathmandu' } }),
    startNats(),
  ]);
  pool = new pg.Pool({ connectionString: server.url(), max: 2 });
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  pool?.on('error', () => {});
  await pool?.end();
  await Promise.all([server?.dispose(), nats?.dispose()]);
});

async function startRelay(env: Record<string, string>): Promise<void> {
  const relay = spawnRelay(env);
  relays.push(relay);
  await relay.waitForLog(/"msg":"streaming from the replication slot"/);
}

async function expected(table: string): Promise<Expected> {
  const client = await pool.connect();
  try {
    return await expectedRows(client, table);
  } finally {
    client.release();
  }
}

function idOf(m: StoredMessage): number {
  return Number((m.json()['key'] as { id: number }).id);
}

function expectRow(m: StoredMessage, field: 'before' | 'after', want: Expected, what: string): void {
  const node = member(parseExact(m.body), field);
  if (node === undefined) throw new Error(`${what}: no ${field}`);
  expect(compareRow(m.body, node, want.get(idOf(m))!), `${what} ${field} (seed ${SEED})`).toEqual([]);
}

describe('sluice run publishes every value as Postgres holds it', () => {
  it(`snapshot reads, inserts and REPLICA IDENTITY FULL updates of generated values (seed ${SEED})`, async () => {
    for (const sql of TYPE_SETUP) await pool.query(sql);
    await pool.query(tableSql('public.vals'));
    await pool.query('ALTER TABLE public.vals REPLICA IDENTITY FULL');
    const r = random(SEED);
    for (let id = 1; id <= ROWS; id++) await pool.query(insertSql('public.vals', id, generateRow(r)));
    const read = await expected('public.vals');

    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.vals', SLUICE_SNAPSHOT: 'initial' });
    await startRelay(env);
    const reads = await waitForMessages(nats.url, env.SLUICE_STREAM, ROWS);

    const changes = new Map<number, string[]>();
    for (let id = 1; id <= ROWS; id++) {
      const change = generateChanges(r);
      changes.set(id, Object.keys(change));
      await pool.query(updateSql('public.vals', id, change));
    }
    for (let id = ROWS + 1; id <= 2 * ROWS; id++)
      await pool.query(insertSql('public.vals', id, generateRow(r)));
    const now = await expected('public.vals');

    const all = await waitForMessages(nats.url, env.SLUICE_STREAM, 3 * ROWS);
    const p = `${env.SLUICE_SUBJECT_PREFIX}.cdc.public.vals`;
    expect(reads.map((m) => m.subject)).toEqual(new Array(ROWS).fill(`${p}.read`));
    const updates = all.filter((m) => m.subject === `${p}.update`);
    const inserts = all.filter((m) => m.subject === `${p}.insert`);
    expect([updates.length, inserts.length]).toEqual([ROWS, ROWS]);

    for (const m of reads) expectRow(m, 'after', read, `read ${idOf(m)}`);
    for (const m of inserts) expectRow(m, 'after', now, `insert ${idOf(m)}`);
    for (const m of updates) {
      const id = idOf(m);
      expectRow(m, 'before', read, `update ${id}`);
      expectRow(m, 'after', now, `update ${id}`);
      const differ = COLUMNS.map((c) => c.name).filter(
        (n) => exactForm(read.get(id)!.get(n)!) !== exactForm(now.get(id)!.get(n)!),
      );
      expect(m.json()['changed'], `update ${id} changed (seed ${SEED})`).toEqual(differ);
      expect(differ.filter((n) => !changes.get(id)!.includes(n))).toEqual([]);
    }
  });
});

describe('regression: json values were parsed and re-serialised on the way', () => {
  it('12345678901234567890 in a jsonb column arrives as 12345678901234567890, not 12345678901234567000', async () => {
    await pool.query('CREATE DOMAIN settings AS jsonb');
    await pool.query(
      'CREATE TABLE public.docs (id int PRIMARY KEY, jb jsonb, j json, s settings, js jsonb[], f float8)',
    );
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.docs' });
    await startRelay(env);
    await pool.query(
      `INSERT INTO public.docs VALUES (1, '{"n": 12345678901234567890}', '{"tiny": 1e-400, "z": -0, "d": 0.10000000000000000000001}',
        '[12345678901234567890]', ARRAY['{"n": 98765432109876543210}']::jsonb[], '-0')`,
    );
    const [insert] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(insert!.body).toContain(
      '"after":{"id":1,"jb":{"n": 12345678901234567890},"j":{"tiny": 1e-400, "z": -0, "d": 0.10000000000000000000001},' +
        '"s":[12345678901234567890],"js":[{"n": 98765432109876543210}],"f":-0}',
    );
    // Still plain JSON for a subscriber's JSON.parse (which reads numbers as doubles).
    expect(insert!.json()['after']).toMatchObject({ id: 1, js: [{ n: 9.876543210987654e19 }] });
  });
});

describe('sluice run lists the changed columns of an update', () => {
  it('with REPLICA IDENTITY FULL: the columns that differ, never an unchanged TOAST column; [] when none', async () => {
    await pool.query('CREATE TABLE public.full_t (id int PRIMARY KEY, status text, note text, body text)');
    await pool.query('ALTER TABLE public.full_t ALTER COLUMN body SET STORAGE EXTERNAL');
    await pool.query('ALTER TABLE public.full_t REPLICA IDENTITY FULL');
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.full_t' });
    await startRelay(env);
    await pool.query(
      `INSERT INTO public.full_t SELECT 1, 'new', 'n', string_agg(md5(g::text), '') FROM generate_series(1, 400) g`,
    );
    await pool.query(`UPDATE public.full_t SET status = 'paid' WHERE id = 1`);
    await pool.query(`UPDATE public.full_t SET status = 'paid', note = 'n' WHERE id = 1`);
    await pool.query(`UPDATE public.full_t SET body = 'short', note = NULL WHERE id = 1`);
    await pool.query('UPDATE public.full_t SET id = 2 WHERE id = 1');
    await pool.query('DELETE FROM public.full_t WHERE id = 2');

    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 6);
    const bodies = messages.map((m) => m.json());
    expect(bodies.map((b) => [b['op'], b['changed']])).toEqual([
      ['insert', undefined],
      // body was not sent (unchanged TOAST): never reported, and filled in from the old row.
      ['update', ['status']],
      ['update', []],
      ['update', ['note', 'body']],
      ['update', ['id']],
      ['delete', undefined],
    ]);
    expect(bodies[1]!['unchanged']).toEqual([]);
    expect((bodies[1]!['after'] as Record<string, string>)['body']).toHaveLength(400 * 32);
    // Present only on updates, between `after` and `unchanged`.
    expect(messages[1]!.body).toMatch(/"after":\{.*\},"changed":\["status"\],"unchanged":\[\],"source":/);
    expect(messages[0]!.body).not.toContain('"changed"');
  });

  it('with the default identity: absent without an old row; the key columns when the key changed', async () => {
    await pool.query('CREATE TABLE public.dflt_t (id int PRIMARY KEY, status text, body text)');
    await pool.query('ALTER TABLE public.dflt_t ALTER COLUMN body SET STORAGE EXTERNAL');
    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.dflt_t' });
    await startRelay(env);
    await pool.query(
      `INSERT INTO public.dflt_t SELECT 1, 'new', string_agg(md5(g::text), '') FROM generate_series(1, 400) g`,
    );
    await pool.query(`UPDATE public.dflt_t SET status = 'paid' WHERE id = 1`);
    await pool.query(`UPDATE public.dflt_t SET id = 2, status = 'moved' WHERE id = 1`);

    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 3);
    const [, noOldRow, keyChange] = messages.map((m) => m.json());
    expect(noOldRow).toMatchObject({ op: 'update', before: null, unchanged: ['body'] });
    expect(Object.hasOwn(noOldRow!, 'changed')).toBe(false);
    // The key-only old row is compared on the key: status changed too, but the old row does not say.
    expect(keyChange).toMatchObject({
      op: 'update',
      before: { id: 1 },
      changed: ['id'],
      unchanged: ['body'],
    });
  });
});
