import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from './support/load.js';
import { LONG, Scenario, type Servers, startServers, stopServers, untilMessages } from './support/system.js';
import type { FaultCounts } from './support/verify.js';

// The short version runs in CI (`npm test`); `npm run test:faults -- --long` scales it up.
const SIZE = LONG
  ? { snapRows: 50_000, big: 200_000, events: 100_000, randomKills: 18, outageMs: 30_000 }
  : { snapRows: 5_000, big: 20_000, events: 4_000, randomKills: 3, outageMs: 10_000 };
const TIMEOUT = LONG ? 3_600_000 : 300_000;

// Commit order through NATS faults comes from publish chaining (issue 11, SLUICE_ORDERING=commit
// with Nats-Expected-Last-Msg-Id): asserted in every scenario. Before it, a publish retried after a
// nats-server restart landed behind later ones (this suite saw 96 commit-order violations).
const COMMIT_CHAINING = true;

let servers: Servers;
let scenario: Scenario | undefined;

beforeAll(async () => {
  servers = await startServers();
});
afterEach(async () => {
  await scenario?.dispose();
  scenario = undefined;
});
afterAll(async () => {
  await stopServers(servers ?? {});
});

function expectExactlyOnceInOrder(counts: FaultCounts, { commitOrder = true } = {}): void {
  expect({
    lost: counts.lost,
    duplicates: counts.duplicates,
    unexpected: counts.unexpected,
    readDuplicates: counts.readDuplicates,
    readsMissing: counts.readsMissing,
    perKeyViolations: counts.perKeyViolations,
    ...(commitOrder ? { commitOrderViolations: counts.commitOrderViolations } : {}),
  }).toEqual({
    lost: 0,
    duplicates: 0,
    unexpected: 0,
    readDuplicates: 0,
    readsMissing: 0,
    perKeyViolations: 0,
    ...(commitOrder ? { commitOrderViolations: 0 } : {}),
  });
}

/** Progress between two faults: the stream grew by `n` messages. */
async function progress(s: Scenario, n = 200): Promise<void> {
  await untilMessages(s, (await s.messages()) + n);
}

describe('fault suite: the stream holds every committed event once, in commit order', () => {
  it(
    `relay SIGKILLed during the initial snapshot, inside a ${SIZE.big}-row transaction and ${SIZE.randomKills} times at random under ${SIZE.events} events`,
    async () => {
      const s = new Scenario(servers, SIZE.snapRows);
      scenario = s;
      await s.setUp();
      await s.startRelay();
      // During the snapshot: a third of the rows read.
      await untilMessages(s, Math.floor(SIZE.snapRows / 3));
      await s.killRelay();

      const load = s.startLoad({ events: SIZE.events, writers: 3, pauseMs: LONG ? 5 : 20 });
      // Inside the large transaction: once part of it is in the stream.
      await load.bigTransaction(SIZE.big);
      await untilMessages(s, (await s.messages()) + Math.floor(SIZE.big / 4), TIMEOUT);
      await s.killRelay();

      for (let k = 1; k <= SIZE.randomKills; k++) {
        const target = Math.floor((SIZE.events * k) / (SIZE.randomKills + 1));
        while (load.written < target) await sleep(50);
        await sleep(Math.random() * 1_000);
        await s.killRelay();
      }
      const counts = await s.verify('relay SIGKILL', TIMEOUT);
      expect(counts.messages).toBeGreaterThanOrEqual(counts.events);
      expectExactlyOnceInOrder(counts);
    },
    TIMEOUT,
  );

  it(
    'Postgres fast restart, immediate restart, and its walsender terminated, while transactions commit',
    async () => {
      const s = new Scenario(servers, 0);
      scenario = s;
      await s.setUp();
      await s.startRelay();
      const load = s.startLoad({ writers: 2, pauseMs: 20 });
      await progress(s);
      await servers.pg.restart(); // fast shutdown, then start
      await progress(s);
      await servers.pg.stopImmediate();
      await servers.pg.start();
      await progress(s);
      await servers.pg.query(
        'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1',
        [s.env.SLUICE_SLOT],
      );
      await progress(s);
      await load.stop();
      expectExactlyOnceInOrder(await s.verify('postgres restarts', TIMEOUT));
    },
    TIMEOUT,
  );

  it(
    `nats-server killed and restarted, then NATS unreachable for ${SIZE.outageMs / 1000} s`,
    async () => {
      const s = new Scenario(servers, 0);
      scenario = s;
      await s.setUp();
      await s.startRelay();
      const load = s.startLoad({ writers: 2, pauseMs: 20 });
      await progress(s);
      await servers.nats.kill();
      await sleep(2_000);
      await servers.nats.start();
      await progress(s);
      servers.proxy.down();
      await sleep(SIZE.outageMs);
      servers.proxy.open();
      await progress(s);
      await load.stop();
      // Commit order through a nats-server restart needs publish chaining (issue 11, SLUICE_ORDERING=commit).
      expectExactlyOnceInOrder(await s.verify('nats restart and outage', TIMEOUT), {
        commitOrder: COMMIT_CHAINING,
      });
    },
    TIMEOUT,
  );

  it(
    'PubAck timeouts from a server too slow to answer, then the network to NATS stalled without closing',
    async () => {
      const s = new Scenario(servers, 0);
      scenario = s;
      await s.setUp();
      await s.startRelay();
      const load = s.startLoad({ writers: 2, pauseMs: 20 });
      await progress(s);
      servers.proxy.delayReplies(3_000); // the relay waits 2 s for a PubAck
      await sleep(8_000);
      servers.proxy.delayReplies(0);
      await progress(s);
      servers.proxy.stall();
      await sleep(SIZE.outageMs);
      servers.proxy.open();
      await progress(s);
      await load.stop();
      expectExactlyOnceInOrder(await s.verify('slow and stalled NATS', TIMEOUT), {
        commitOrder: COMMIT_CHAINING,
      });
    },
    TIMEOUT,
  );
});
