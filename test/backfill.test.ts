/**
 * Tables added later and `sluice backfill`, end to end: `sluice run` and `sluice backfill` as child
 * processes configured by environment variables, a real Postgres, a real nats-server, and a
 * JetStream consumer reading what the stream holds at the end.
 */

import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, type StoredMessage } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

// The relay of 'with a relay running' lives from its beforeAll to the end of the file.
const {
  pg: server,
  nats,
  spawn,
  startRelay,
} = relayHarness({ killRelays: 'afterAll', streamingTimeoutMs: 60_000 });
let pool: pg.Pool;

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: server.url(), max: 6 });
});
afterAll(async () => {
  pool?.on('error', () => {});
  await pool?.end();
});

type Env = ReturnType<typeof relayEnv>;
type Row = Record<string, unknown>;

/** `sluice backfill <args>` with the relay's environment; its exit code and what it printed. */
async function backfill(
  env: Env,
  args: string[],
): Promise<{ code: number | null; stdout: string; output: string }> {
  const cli = spawnRelay(env, ['backfill', ...args]);
  const { code } = await cli.exited;
  return { code, stdout: cli.stdoutLines.join('\n'), output: cli.output() };
}

async function requestBackfill(env: Env, args: string[]): Promise<number> {
  const result = await backfill(env, args);
  expect(result.code, result.output).toBe(0);
  const id = /backfill (\d+) requested/.exec(result.stdout)?.[1];
  expect(id, result.output).toBeDefined();
  return Number(id);
}

async function createTable(name: string, rows: number): Promise<void> {
  await pool.query(`create table public.${name} (id int primary key, v int not null, note text)`);
  await pool.query(
    `insert into public.${name} select g, g % 100, 'row ' || g from generate_series(1, ${rows}) g`,
  );
  await pool.query(`analyze public.${name}`);
}

async function tableRows(name: string): Promise<Map<number, Row>> {
  const { rows } = await pool.query<Row & { id: number }>(`select id, v, note from public.${name}`);
  return new Map(rows.map((r) => [r.id, r]));
}

/**
 * Updates and deletes (and inserts of new keys, when `inserts`) of random rows of `tables`, until
 * stopped; remembers every key it touched. Paced (a few hundred a second): steady concurrent
 * writes, not a load test that would slow every test file running beside this one.
 */
function startWriter(tables: { name: string; rows: number }[], seed: number, inserts = true) {
  const writer = new pg.Pool({ connectionString: server.url(), max: 2 });
  const touched = new Map(tables.map((t) => [t.name, new Set<number>()]));
  let random = seed;
  const next = (n: number) => {
    random = (random * 1103515245 + 12345) & 0x7fffffff;
    return random % n;
  };
  const nextId = new Map(tables.map((t) => [t.name, t.rows + 1]));
  let stop = false;
  let ops = 0;
  const done = (async () => {
    while (!stop) {
      const t = tables[ops % tables.length]!;
      const id = 1 + next(t.rows);
      const r = next(100);
      touched.get(t.name)!.add(id);
      if (r < 65)
        await writer.query(`update public.${t.name} set v = v + 1, note = 'updated' where id = $1`, [id]);
      else if (r < 85 || !inserts) await writer.query(`delete from public.${t.name} where id = $1`, [id]);
      else {
        const fresh = nextId.get(t.name)!;
        nextId.set(t.name, fresh + 1);
        touched.get(t.name)!.add(fresh);
        await writer.query(`insert into public.${t.name} values ($1, 0, 'inserted')`, [fresh]);
      }
      ops++;
      await delay(2);
    }
  })();
  return {
    touched: (name: string) => touched.get(name)!,
    ops: () => ops,
    async stop() {
      stop = true;
      await done;
      await writer.end();
    },
  };
}

/**
 * Commits a row to `marker` (a captured table) and waits until the stream holds its insert: with
 * commit ordering, everything committed before is in the stream then.
 */
async function drain(env: Env, marker: string, id: number): Promise<void> {
  await pool.query(`insert into public.${marker} values ($1, 0, 'marker')`, [id]);
  const subject = `${env.SLUICE_SUBJECT_PREFIX}.cdc.public.${marker}.insert`;
  await waitFor(
    async () => {
      const nc = await connect({ servers: nats.url });
      try {
        const jsm = await jetstreamManager(nc);
        const last = await jsm.streams.getMessage(env.SLUICE_STREAM, { last_by_subj: subject });
        return last !== null && (JSON.parse(last.string()) as { key: { id: number } }).key.id === id;
      } catch {
        return false;
      } finally {
        await nc.close();
      }
    },
    { timeoutMs: 90_000, intervalMs: 200, message: `marker ${id} of ${marker} to be in the stream` },
  );
}

interface Envelope {
  op: string;
  table: string;
  key: { id: number };
  before: { id: number } | null;
  after: Row | null;
  source: { snapshot: string | null };
}

/**
 * Rebuilds `table` from the stream the way a subscriber keeps state per key, checking on the way
 * that no read is older than a change of its key stored before it (a read after its key's delete, or
 * differing from the state a change left). Also counts the reads of each key.
 */
function replay(messages: StoredMessage[], table: string) {
  const state = new Map<number, Row | 'deleted'>();
  const reads = new Map<number, number>();
  const changed = new Set<number>();
  for (const m of messages) {
    const e = m.json() as unknown as Envelope;
    if (e.table !== table) continue;
    const id = e.key.id;
    if (e.op === 'read') {
      reads.set(id, (reads.get(id) ?? 0) + 1);
      const known = state.get(id);
      expect(known, `read of ${table} key ${id} (stream seq ${m.seq}) after the key was deleted`).not.toBe(
        'deleted',
      );
      if (known !== undefined)
        expect(e.after, `stale read of ${table} key ${id} (stream seq ${m.seq})`).toEqual(known);
      state.set(id, e.after!);
      continue;
    }
    changed.add(id);
    if (e.op === 'delete') state.set(id, 'deleted');
    else state.set(id, e.after!);
  }
  const rows = new Map<number, Row>();
  for (const [id, row] of state) if (row !== 'deleted') rows.set(id, row);
  return { rows, reads, changed };
}

function readsOf(messages: StoredMessage[], table: string): StoredMessage[] {
  return messages.filter((m) => m.subject.endsWith(`.cdc.public.${table}.read`));
}

async function backfillTable(id: number): Promise<{ state: string; rows_read: number }> {
  const { rows } = await pool.query<{ state: string; rows_read: number }>(
    'select state, rows_read::int as rows_read from sluice.backfill_table where backfill_id = $1',
    [id],
  );
  return rows[0]!;
}

async function requestState(id: number): Promise<string | undefined> {
  const { rows } = await pool.query<{ state: string }>('select state from sluice.backfill where id = $1', [
    id,
  ]);
  return rows[0]?.state;
}

/** Waits until the relay's snapshot of `table` (initial, or of a table added later) is done. */
async function snapshotDone(env: Env, table: string): Promise<void> {
  await waitFor(
    async () =>
      (
        await pool.query(
          `select 1 from sluice.snapshot_progress where slot = $1 and table_name = $2 and status = 'done'`,
          [env.SLUICE_SLOT, table],
        )
      ).rowCount === 1,
    { timeoutMs: 90_000, intervalMs: 250, message: `the snapshot of public.${table} to finish` },
  );
}

describe('a table added to SLUICE_TABLES later', () => {
  it('is snapshotted on the next start while writes to both tables go on: every row of it arrives once as a read, and the stream ends equal to both tables', async () => {
    await createTable('added_a', 2000);
    await createTable('added_b', 20_000);
    await createTable('added_marker', 0);
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: 'public.added_a,public.added_marker',
      SLUICE_SNAPSHOT: 'initial',
    });
    let relay = await startRelay(env);
    const writer = startWriter(
      [
        { name: 'added_a', rows: 2000 },
        { name: 'added_b', rows: 20_000 },
      ],
      3,
    );
    await snapshotDone(env, 'added_a');
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
    // public.added_b was written to all along, but is captured only from this start on.
    const touchedBeforeB = new Set(writer.touched('added_b'));

    relay = spawn({ ...env, SLUICE_TABLES: 'public.added_a,public.added_b,public.added_marker' });
    await relay.waitForLog(/added to SLUICE_TABLES since the slot was created/, 60_000);
    await snapshotDone(env, 'added_b');
    await writer.stop();
    await drain(env, 'added_marker', 1);
    await relay.kill('SIGTERM');

    expect(writer.ops()).toBeGreaterThan(100);
    const messages = await readStream(nats.url, env.SLUICE_STREAM);
    for (const table of ['added_a', 'added_b']) {
      const { rows } = replay(messages, table);
      expect(rows, `per-key state of ${table} in the stream`).toEqual(await tableRows(table));
    }
    const b = replay(messages, 'added_b');
    expect(Math.max(...b.reads.values())).toBe(1);
    // A row nobody wrote to while its chunk was read arrives as exactly one read; the others are
    // either read once or carried by the change that made the read stale.
    const untouched = [...(await tableRows('added_b')).keys()].filter(
      (id) => !writer.touched('added_b').has(id),
    );
    expect(untouched.length).toBeGreaterThan(10_000);
    for (const id of untouched) expect(b.reads.get(id), `reads of untouched key ${id}`).toBe(1);
    // Changed only before the table was captured: no change event holds these rows, the read does.
    const finalB = await tableRows('added_b');
    for (const id of touchedBeforeB) {
      if (!b.changed.has(id) && finalB.has(id)) expect(b.reads.get(id), `reads of key ${id}`).toBe(1);
    }
    const snapshots = new Set(
      readsOf(messages, 'added_b').map((m) => (m.json() as unknown as Envelope).source.snapshot),
    );
    expect(snapshots.size).toBe(1);
    expect(new Set(messages.map((m) => m.headers['Nats-Msg-Id'])).size).toBe(messages.length);
  });
});

describe('sluice backfill', () => {
  it('of a 50k-row table under concurrent updates and deletes, with the relay SIGKILLed twice (restart, then failover to a standby): the stream ends equal to the table, no read stored twice, none older than a change of its key', async () => {
    const ROWS = 50_000;
    await createTable('bf_kill', ROWS);
    await createTable('bf_kill_marker', 0);
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: 'public.bf_kill,public.bf_kill_marker',
      SLUICE_SNAPSHOT: 'never',
    });
    let relay = await startRelay(env);
    const writer = startWriter([{ name: 'bf_kill', rows: ROWS }], 17, false);
    const id = await requestBackfill(env, ['public.bf_kill']);

    const passes = (atLeast: number) =>
      waitFor(async () => (await backfillTable(id)).rows_read >= atLeast, {
        timeoutMs: 90_000,
        intervalMs: 50,
        message: `backfill ${id} to pass ${atLeast} rows`,
      });
    const resumed = new RegExp(`"msg":"backfill ${id} resumed after its last acknowledged chunk"`);
    // First crash: a relay restarted in its place resumes the request. A second relay starts beside
    // it as a standby: it waits for the slot and leaves the request alone.
    await passes(8_000);
    await relay.kill('SIGKILL');
    const [first, second] = [spawn(env), spawn(env)];
    const active = await Promise.any([
      first.waitForLog(resumed, 60_000).then(() => first),
      second.waitForLog(resumed, 60_000).then(() => second),
    ]);
    const standby = active === first ? second : first;
    await standby.waitForLog(/is held by/, 60_000);
    // Second crash: the standby takes the slot over and resumes the request (failover).
    await passes(25_000);
    expect(standby.lines.filter((l) => l.includes(`backfill ${id}`))).toEqual([]);
    await active.kill('SIGKILL');
    relay = standby;
    await relay.waitForLog(resumed, 60_000);
    await waitFor(async () => (await requestState(id)) === 'done', {
      timeoutMs: 120_000,
      intervalMs: 250,
      message: `backfill ${id} to finish`,
    });
    await writer.stop();
    await drain(env, 'bf_kill_marker', 1);
    await relay.kill('SIGTERM');

    expect(writer.ops()).toBeGreaterThan(100);
    const messages = await readStream(nats.url, env.SLUICE_STREAM);
    const { rows, reads } = replay(messages, 'bf_kill');
    expect(rows).toEqual(await tableRows('bf_kill'));
    expect(Math.max(...reads.values()), 'reads of one key').toBe(1);
    for (let key = 1; key <= ROWS; key++) {
      if (!writer.touched('bf_kill').has(key))
        expect(reads.get(key), `reads of untouched key ${key}`).toBe(1);
    }
    const readIds = readsOf(messages, 'bf_kill').map((m) => m.headers['Nats-Msg-Id']!);
    expect(
      readIds.every((msgId) => msgId.startsWith(`${env.SLUICE_SLOT}:read:${env.SLUICE_SLOT}-b${id}-`)),
    ).toBe(true);
    expect(new Set(messages.map((m) => m.headers['Nats-Msg-Id'])).size).toBe(messages.length);
    const [progress] = (
      await pool.query('select rows_read::int as n from sluice.backfill_table where backfill_id = $1', [id])
    ).rows as [{ n: number }];
    // Progress counts acknowledged chunks once, however often a chunk was read.
    expect(progress.n).toBeLessThanOrEqual(readIds.length);
  }, 240_000);

  it('asked while no relay runs is taken up by the next relay to start: every row arrives once as a read', async () => {
    await createTable('bf_queued', 2_000);
    await createTable('bf_queued_marker', 0);
    const env = relayEnv(server, nats, {
      SLUICE_TABLES: 'public.bf_queued,public.bf_queued_marker',
      SLUICE_SNAPSHOT: 'never',
    });
    // A relay ran once (slot, Sluice's tables) and is stopped: the request waits in the database.
    let relay = await startRelay(env);
    await relay.kill('SIGTERM');
    const id = await requestBackfill(env, ['public.bf_queued']);
    await delay(1_500);
    expect(await requestState(id)).not.toBe('done');
    expect(
      (await readStream(nats.url, env.SLUICE_STREAM)).filter((m) => m.subject.endsWith('.read')),
    ).toEqual([]);

    relay = await startRelay(env);
    await waitFor(async () => (await requestState(id)) === 'done', {
      timeoutMs: 90_000,
      intervalMs: 250,
      message: `backfill ${id} to be done by the relay started after the request`,
    });
    await drain(env, 'bf_queued_marker', 1);
    await relay.kill('SIGTERM');
    const reads = readsOf(await readStream(nats.url, env.SLUICE_STREAM), 'bf_queued');
    expect(reads).toHaveLength(2_000);
    expect(new Set(reads.map((m) => m.json()['key'] && JSON.stringify(m.json()['key']))).size).toBe(2_000);
  }, 180_000);

  describe('with a relay running', () => {
    let env: Env;
    let relay: RelayProcess;
    const ROWS = 40_000;

    beforeAll(async () => {
      await createTable('bf_where', 1000);
      await createTable('bf_cancel', ROWS);
      await createTable('bf_marker', 0);
      await createTable('bf_uncaptured', 10);
      env = relayEnv(server, nats, {
        SLUICE_TABLES: 'public.bf_where,public.bf_cancel,public.bf_marker',
        SLUICE_SNAPSHOT: 'never',
        SLUICE_SNAPSHOT_CHUNK_SIZE: '100',
        SLUICE_HTTP_PORT: String(await freePort()),
        SLUICE_HTTP_HOST: '127.0.0.1',
      });
      relay = await startRelay(env);
    });

    it('runs requests one after another; a second backfill of a table publishes its reads again under new ids; --where limits the rows; progress in --list, the log and the metrics', async () => {
      // Two requests at once: the whole table, then the rows a condition keeps.
      const whole = await requestBackfill(env, ['public.bf_where']);
      const id = await requestBackfill(env, [
        'public.bf_where',
        '--where',
        'id % 10 = 0 and note is not null',
      ]);
      await waitFor(async () => (await requestState(id)) === 'done', {
        timeoutMs: 60_000,
        message: `backfill ${id} to finish`,
      });
      await drain(env, 'bf_marker', 1);
      const { rows: times } = await pool.query<{ id: string; started_at: Date; finished_at: Date }>(
        'select id, started_at, finished_at from sluice.backfill where id in ($1, $2) order by id',
        [whole, id],
      );
      expect(times[0]!.finished_at.getTime()).toBeLessThanOrEqual(times[1]!.started_at.getTime());

      const reads = readsOf(await readStream(nats.url, env.SLUICE_STREAM), 'bf_where');
      const bySnapshot = (request: number) =>
        reads.filter((m) => (m.json() as unknown as Envelope).source.snapshot?.includes(`-b${request}-`));
      expect(bySnapshot(whole)).toHaveLength(1000);
      const limited = bySnapshot(id);
      expect(limited.map((m) => (m.json() as unknown as Envelope).key.id).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 100 }, (_, i) => (i + 1) * 10),
      );
      expect(reads).toHaveLength(1100);
      // Every read of the second request comes after every read of the first, under other ids.
      expect(Math.min(...limited.map((m) => m.seq))).toBeGreaterThan(
        Math.max(...bySnapshot(whole).map((m) => m.seq)),
      );
      const wholeIds = new Set(bySnapshot(whole).map((m) => m.headers['Nats-Msg-Id']));
      expect(limited.filter((m) => wholeIds.has(m.headers['Nats-Msg-Id']!))).toEqual([]);

      const list = await backfill(env, ['--list']);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(
        new RegExp(
          `#${whole}  done  requested .*\\n {4}public\\.bf_where\\s+done\\s+1000 of ~\\d+ rows \\(100%\\)`,
        ),
      );
      expect(list.stdout).toMatch(
        new RegExp(
          `#${id}  done  requested .* where id % 10 = 0 and note is not null\\n {4}public\\.bf_where\\s+done\\s+100 of ~\\d+ rows \\(100%\\), \\d+ rows/s`,
        ),
      );
      await relay.waitForLog(
        new RegExp(
          `"msg":"backfill ${id} of public.bf_where finished: 100 of ~\\d+ rows \\(100%\\), \\d+ rows/s"`,
        ),
      );
      // Request counts are refreshed at the relay's next look for requests, within a second.
      const metrics = await waitFor(
        async () => {
          const text = await (await fetch(`http://127.0.0.1:${env.SLUICE_HTTP_PORT}/metrics`)).text();
          return /^sluice_backfill_requests\{state="running"\} 0$/m.test(text) && text;
        },
        { message: 'sluice_backfill_requests to show nothing running' },
      );
      expect(metrics).toMatch(/^sluice_snapshot_rows_total\{schema="public",table="bf_where"\} 1100$/m);
      expect(metrics).toMatch(/^sluice_snapshot_rows_estimate\{schema="public",table="bf_where"\} \d+$/m);
      expect(metrics).toMatch(/^sluice_snapshot_progress_ratio\{schema="public",table="bf_where"\} 1$/m);
      expect(metrics).toMatch(/^sluice_backfill_requests\{state="pending"\} 0$/m);
    });

    it('refuses a --where that is not a condition on the table, saying why, and records nothing', async () => {
      const before = (await pool.query('select count(*)::int as n from sluice.backfill')).rows[0].n as number;
      const unknownColumn = await backfill(env, ['public.bf_where', '--where', 'nope > 1']);
      expect(unknownColumn.code).toBe(2);
      expect(unknownColumn.output).toMatch(
        /--where "nope > 1" is not a condition on public\.bf_where: column "nope" does not exist/,
      );
      const injection = await backfill(env, [
        'public.bf_where',
        '--where',
        'true); drop table public.bf_where; --',
      ]);
      expect(injection.code).toBe(2);
      expect(injection.output).toMatch(/closes a parenthesis it did not open/);
      const otherTable = await backfill(env, [
        'public.bf_where',
        '--where',
        'id in (select id from public.bf_uncaptured)',
      ]);
      expect(otherTable.code).toBe(2);
      expect(otherTable.output).toMatch(/subquery/);
      expect((await pool.query('select count(*)::int as n from sluice.backfill')).rows[0].n).toBe(before);
      expect((await pool.query('select count(*)::int as n from public.bf_where')).rows[0].n).toBe(1000);
    });

    it('--cancel stops a running backfill: no more reads after the relay says so', async () => {
      const id = await requestBackfill(env, ['public.bf_cancel']);
      await waitFor(async () => (await backfillTable(id)).rows_read >= 2000, {
        timeoutMs: 60_000,
        intervalMs: 50,
        message: `backfill ${id} to read its first chunks`,
      });
      const cancelled = await backfill(env, ['--cancel', String(id)]);
      expect(cancelled.code, cancelled.output).toBe(0);
      expect(cancelled.stdout).toMatch(new RegExp(`backfill ${id} cancelled: the relay stops it`));
      await relay.waitForLog(new RegExp(`"msg":"backfill ${id} cancelled after \\d+ rows"`), 30_000);
      await drain(env, 'bf_marker', 2);
      const readCount = readsOf(await readStream(nats.url, env.SLUICE_STREAM), 'bf_cancel').length;
      expect(readCount).toBeGreaterThanOrEqual(2000);
      expect(readCount).toBeLessThan(ROWS);
      // Nothing more comes: a later marker finds the same reads.
      await drain(env, 'bf_marker', 3);
      expect(readsOf(await readStream(nats.url, env.SLUICE_STREAM), 'bf_cancel')).toHaveLength(readCount);
      expect(await requestState(id)).toBe('cancelled');

      const again = await backfill(env, ['--cancel', String(id)]);
      expect(again.code).toBe(2);
      expect(again.output).toMatch(new RegExp(`backfill ${id} already finished \\(cancelled\\)`));
      const list = await backfill(env, ['--list']);
      expect(list.stdout).toMatch(new RegExp(`#${id}  cancelled  requested .* finished `));
      expect(list.stdout).toMatch(/public\.bf_cancel\s+running\s+\d+ of ~\d+ rows \(\d+%\), \d+ rows\/s/);
    });

    it('an unknown table, a table the relay does not capture or an unknown request id is a clear error', async () => {
      await pool.query('create table public."BfCase" (id int primary key)');
      const unknown = await backfill(env, ['public.bf_nope', 'Public.BfCase']);
      expect(unknown.code).toBe(2);
      expect(unknown.output).toMatch(
        /cannot backfill as asked; nothing was requested:\n {2}- public\.bf_nope does not exist \(name it as in SLUICE_TABLES.*\n {2}- public\.bfcase does not exist \(did you mean public\."BfCase"\?/,
      );
      const uncaptured = await backfill(env, ['public.bf_uncaptured']);
      expect(uncaptured.code).toBe(2);
      expect(uncaptured.output).toMatch(
        new RegExp(
          `public\\.bf_uncaptured is not in publication "${env.SLUICE_PUBLICATION}".*add it to SLUICE_TABLES`,
        ),
      );
      const noRequest = await backfill(env, ['--cancel', '999999']);
      expect(noRequest.code).toBe(2);
      expect(noRequest.output).toMatch(/there is no backfill request 999999/);
    });

    it('a request for a table the relay does not capture, written to sluice.backfill directly, fails saying why', async () => {
      // In the publication (say, by hand), yet not in SLUICE_TABLES: the relay would not stream its changes.
      await pool.query(`alter publication ${env.SLUICE_PUBLICATION} add table public.bf_uncaptured`);
      const id = await requestBackfill(env, ['public.bf_uncaptured']);
      await waitFor(async () => (await requestState(id)) === 'failed', {
        timeoutMs: 30_000,
        message: `backfill ${id} to fail`,
      });
      const list = await backfill(env, ['--list']);
      expect(list.stdout).toMatch(
        new RegExp(
          `#${id}  failed .*\\n {4}error: public\\.bf_uncaptured is not captured by this relay.*SLUICE_TABLES`,
        ),
      );
    });
  });
});
