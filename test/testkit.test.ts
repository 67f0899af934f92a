import fs from 'node:fs';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  freePort,
  type NatsServer,
  type PostgresServer,
  startNats,
  startNatsCluster,
  startPostgres,
  WaitTimeoutError,
  waitFor,
} from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

describe('startPostgres', () => {
  let pg: PostgresServer;

  beforeAll(async () => {
    pg = await startPostgres({ database: 'app', settings: { max_prepared_transactions: '5' } });
  });
  afterAll(async () => {
    await pg?.dispose();
  });

  it('runs with wal_level=logical, the requested settings and database, on 127.0.0.1', async () => {
    const [row] = await pg.query<{ wal_level: string; mpt: string; db: string }>(
      "SELECT current_setting('wal_level') AS wal_level, current_setting('max_prepared_transactions') AS mpt, current_database() AS db",
    );
    expect(row).toEqual({ wal_level: 'logical', mpt: '5', db: 'app' });
    expect(pg.url()).toBe(`postgres://postgres@127.0.0.1:${pg.port}/app`);
    expect(pg.url('postgres', 'bob')).toBe(`postgres://bob@127.0.0.1:${pg.port}/postgres`);
  });

  it('accepts a pgoutput logical replication slot', async () => {
    await pg.query("SELECT pg_create_logical_replication_slot('testkit_slot', 'pgoutput')");
    const slots = await pg.query<{ slot_name: string; plugin: string }>(
      'SELECT slot_name, plugin FROM pg_replication_slots',
    );
    expect(slots).toEqual([{ slot_name: 'testkit_slot', plugin: 'pgoutput' }]);
  });

  it('keeps committed rows and slots across kill and start on the same port', async () => {
    await pg.query('CREATE TABLE survivors (id int PRIMARY KEY)');
    await pg.query('INSERT INTO survivors VALUES (1), (2)');
    const port = pg.port;

    await pg.kill();
    await expect(pg.query('SELECT 1')).rejects.toThrow();
    await pg.start();

    expect(pg.port).toBe(port);
    expect(await pg.query('SELECT id FROM survivors ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
    const slots = await pg.query('SELECT slot_name FROM pg_replication_slots');
    expect(slots).toEqual([{ slot_name: 'testkit_slot' }]);
    expect(fs.readFileSync(pg.logFile, 'utf8')).toMatch(
      /database system was interrupted|not properly shut down/,
    );
  });

  it('applies setConfig at the next restart', async () => {
    await pg.setConfig({ logical_decoding_work_mem: '64kB' });
    await pg.restart();
    const [row] = await pg.query<{ v: string }>("SELECT current_setting('logical_decoding_work_mem') AS v");
    expect(row?.v).toBe('64kB');
  });

  it('removes its data directory on dispose, and a second dispose is harmless', async () => {
    const other = await startPostgres();
    expect(fs.existsSync(other.dataDir)).toBe(true);
    await other.dispose();
    await other.dispose();
    expect(fs.existsSync(other.dataDir)).toBe(false);
    await expect(other.start()).rejects.toThrow(/disposed/);
  });
});

describe('startNats', () => {
  let nats: NatsServer;

  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await nats?.dispose();
  });

  it('runs JetStream: a stream can be created and written to', async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'TESTKIT', subjects: ['testkit.>'] });
      const ack = await jetstream(nc).publish('testkit.a', 'hello', { msgID: 'm-1' });
      expect(ack).toMatchObject({ stream: 'TESTKIT', seq: 1, duplicate: false });
    } finally {
      await nc.close();
    }
  });

  it('keeps streams and messages across kill and start on the same port and store dir', async () => {
    const port = nats.port;
    await nats.kill();
    await nats.start();
    expect(nats.port).toBe(port);

    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info('TESTKIT');
      expect(info.state.messages).toBe(1);
      const msg = await jsm.streams.getMessage('TESTKIT', { seq: 1 });
      expect(msg?.string()).toBe('hello');
    } finally {
      await nc.close();
    }
  });

  it('restarts gracefully with stop and start', async () => {
    await nats.restart();
    const res = await fetch(`${nats.monitorUrl}/healthz`);
    expect(res.status).toBe(200);
  });

  it('fails as soon as the server exits during start-up, with its log', async () => {
    const failed = await startNats({ args: ['--no_such_option'] }).then(
      (server) => server.dispose().then(() => undefined),
      (err: Error) => err,
    );
    expect(failed).toBeInstanceOf(Error);
    expect(failed?.message).toMatch(/nats-server exited during start-up/);
    expect(failed?.message).toMatch(/nats-server\.log \(tail\) ---\n\s*\S/);
    expect((failed?.cause as Error | undefined)?.name).toBe('ServerExitedError');
  });

  it('with restartWhenUnhealthy, kills a server not healthy in time and starts it once more before failing', async () => {
    // A cluster node whose peers never come: JetStream has no meta leader, so /healthz never says ok.
    const route = `nats-route://127.0.0.1:${await freePort()}`;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const failed = await startNats({
        args: [
          '--server_name',
          'lonely',
          '--cluster_name',
          'c',
          '--cluster',
          `nats://127.0.0.1:${await freePort()}`,
          '--routes',
          route,
        ],
        readyTimeoutMs: 1_000,
        restartWhenUnhealthy: true,
      }).then(
        (server) => server.dispose().then(() => undefined),
        (err: Error) => err,
      );
      expect(failed?.message).toMatch(/did not start: Timed out after 1000 ms waiting for nats-server/);
      expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([
        expect.stringMatching(/was not healthy in time: starting it once more/),
      ]);
    } finally {
      warn.mockRestore();
    }
  });

  it('removes its store directory on dispose', async () => {
    const other = await startNats();
    expect(fs.existsSync(other.storeDir)).toBe(true);
    await other.dispose();
    await other.dispose();
    expect(fs.existsSync(other.storeDir)).toBe(false);
  });
});

describe('helpers', () => {
  it('freePort returns a port that can be listened on', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });

  it('waitFor resolves with the first truthy value', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { calls } : undefined), { intervalMs: 1 });
    expect(value).toEqual({ calls: 3 });
  });

  it('waitFor stops at once on an error it is told is fatal', async () => {
    let calls = 0;
    const gone = new Error('the server exited');
    const failure = waitFor(
      () => {
        calls++;
        throw gone;
      },
      { timeoutMs: 60_000, intervalMs: 5, fatal: (err) => err === gone },
    );
    await expect(failure).rejects.toBe(gone);
    expect(calls).toBe(1);
  });

  it('waitFor fails at the deadline naming what it waited for, with the last error as cause', async () => {
    const boom = new Error('not yet');
    const failure = waitFor(
      () => {
        throw boom;
      },
      { timeoutMs: 50, intervalMs: 5, message: 'the moon' },
    );
    await expect(failure).rejects.toBeInstanceOf(WaitTimeoutError);
    await expect(failure).rejects.toMatchObject({
      message: expect.stringMatching(/the moon.*not yet/),
      cause: boom,
    });
  });
});

describe('startNatsCluster: caughtUp', () => {
  it('replaces a replica that lacks part of the stream with a full copy from the leader', async () => {
    const cluster = await startNatsCluster(3);
    const nc = await connect({ servers: cluster.urls.split(',') });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'CAUGHT', subjects: ['caught.>'], num_replicas: 3 });
      const js = jetstream(nc);
      for (let i = 0; i < 200; i++) await js.publish('caught.a', `m${i}`);
      await cluster.caughtUp('CAUGHT');
      // A follower whose copy of the messages is gone while its Raft log says it applied them: it
      // comes back holding only what is published after, and never fetches the rest by itself.
      const leader = await cluster.streamLeader('CAUGHT');
      const follower = cluster.nodes.find((n) => n !== leader) as (typeof cluster.nodes)[number];
      await follower.stop();
      fs.rmSync(`${follower.storeDir}/jetstream/$G/streams/CAUGHT`, { recursive: true, force: true });
      await follower.start();
      for (let i = 200; i < 300; i++) await js.publish('caught.a', `m${i}`);
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
      try {
        await cluster.caughtUp('CAUGHT', 3_000);
        expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([
          expect.stringMatching(new RegExp(`${follower.name} did not catch up .*replacing its replica`)),
        ]);
      } finally {
        warn.mockRestore();
      }
      const res = await fetch(`${follower.monitorUrl}/jsz?streams=true`);
      const jsz = (await res.json()) as {
        account_details: Array<{ stream_detail: Array<{ state: { first_seq: number; last_seq: number } }> }>;
      };
      expect(jsz.account_details[0]?.stream_detail[0]?.state).toMatchObject({ first_seq: 1, last_seq: 300 });
      expect((await jsm.streams.info('CAUGHT')).config.num_replicas).toBe(3);
    } finally {
      await nc.close();
      await cluster.dispose();
    }
  });
});
