// npm run bench:ordering: what SLUICE_ORDERING=commit costs against SLUICE_ORDERING=key, end to end
// (Postgres → `sluice run` → JetStream, slot acknowledged after PubAcks), on two workloads:
//   inserts: one transaction of BENCH_ORDERING_ROWS inserts, every row its own key;
//   hot:     one transaction of BENCH_ORDERING_ROWS updates cycling over 100 rows (hot keys).
// Runs alternate commit, key, key, commit… (BENCH_ORDERING_RUNS of each, default 3) on the same
// private servers, and print per mode the median events/s and the relay's CPU time per event
// (user + system from /proc, so a machine loaded by others shows in events/s more than in CPU/event).
// Each run writes first, then starts the relay and times it from its first PubAck to its last.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startNats, startPostgres, waitFor } from '@sluice/testkit';

const ROWS = Number(process.env.BENCH_ORDERING_ROWS ?? 100_000);
const RUNS = Number(process.env.BENCH_ORDERING_RUNS ?? 3);
const BIN = fileURLToPath(new URL('../apps/relay/bin/sluice.js', import.meta.url));
const TICKS = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s

function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime, stime
  } catch {
    return Number.NaN;
  }
}

async function streamCount(nc, stream) {
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
  } catch {
    return 0;
  }
}

const WORKLOADS = {
  inserts: {
    setup: (t) => `CREATE TABLE ${t} (id int8 PRIMARY KEY, customer text, amount numeric, note text)`,
    write: (t) =>
      `INSERT INTO ${t} SELECT g, 'customer-' || (g % 9973), (g % 100000) / 100.0, md5(g::text) FROM generate_series(1, ${ROWS}) g`,
  },
  hot: {
    setup: (t) =>
      `CREATE TABLE ${t} (id int8 PRIMARY KEY, v int8 NOT NULL); INSERT INTO ${t} SELECT g, 0 FROM generate_series(0, 99) g`,
    write: (t) =>
      `DO $$ BEGIN FOR i IN 1..${ROWS} LOOP UPDATE ${t} SET v = v + 1 WHERE id = i % 100; END LOOP; END $$`,
  },
};

let runNo = 0;

async function run(pgServer, nats, nc, workload, ordering) {
  const name = `bo${++runNo}`;
  const table = `public.${name}`;
  const stream = name.toUpperCase();
  // The changes are in the WAL before the relay starts (publication and slot made here, the relay
  // uses them as they are), and the relay is timed from its first PubAck to its last: neither the
  // writer nor the relay's start-up is measured.
  await pgServer.query(WORKLOADS[workload].setup(table));
  await pgServer.query(`CREATE PUBLICATION ${name} FOR TABLE ${table}`);
  await pgServer.query(`SELECT pg_create_logical_replication_slot('${name}', 'pgoutput')`);
  await pgServer.query(WORKLOADS[workload].write(table));
  const child = spawn(process.execPath, [BIN, 'run'], {
    env: {
      PATH: process.env.PATH,
      SLUICE_DATABASE_URL: pgServer.url(),
      SLUICE_NATS_URL: nats.url,
      SLUICE_TABLES: table,
      SLUICE_SLOT: name,
      SLUICE_PUBLICATION: name,
      SLUICE_STREAM: stream,
      SLUICE_SUBJECT_PREFIX: name,
      SLUICE_SNAPSHOT: 'never',
      SLUICE_HTTP_PORT: '0',
      SLUICE_ORDERING: ordering,
      SLUICE_OUTBOX_TABLE: 'none',
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'none',
      SLUICE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    await waitFor(async () => (await streamCount(nc, stream)) > 0, {
      timeoutMs: 120_000,
      intervalMs: 20,
      message: `${name}: the first event`,
    });
    const cpuBefore = cpuSeconds(child.pid);
    const startedAt = performance.now();
    const first = await streamCount(nc, stream);
    await waitFor(async () => (await streamCount(nc, stream)) >= ROWS, {
      timeoutMs: 30 * 60_000,
      intervalMs: 20,
      message: `${name} to hold ${ROWS} messages`,
    });
    const seconds = (performance.now() - startedAt) / 1000;
    const cpu = cpuSeconds(child.pid) - cpuBefore;
    const events = ROWS - first;
    return { eventsPerSecond: events / seconds, cpuMicrosPerEvent: (cpu / events) * 1e6 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
    await pgServer.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await pgServer.query(`DROP PUBLICATION IF EXISTS ${name}`);
    await pgServer.query(`DROP TABLE ${table}`);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const [pgServer, nats] = await Promise.all([startPostgres(), startNats()]);
const nc = await connect({ servers: nats.url });
try {
  console.log(`ordering: ${ROWS.toLocaleString('en')} events per run, ${RUNS} runs per mode, alternating`);
  for (const workload of Object.keys(WORKLOADS)) {
    const results = { commit: [], key: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const mode of i % 2 === 0 ? ['commit', 'key'] : ['key', 'commit']) {
        const r = await run(pgServer, nats, nc, workload, mode);
        results[mode].push(r);
        console.log(
          `  ${workload.padEnd(8)} ${mode.padEnd(7)} ${Math.round(r.eventsPerSecond).toLocaleString('en').padStart(8)} events/s  ${r.cpuMicrosPerEvent.toFixed(1).padStart(6)} µs CPU/event`,
        );
      }
    }
    const eps = (m) => median(results[m].map((r) => r.eventsPerSecond));
    const cpu = (m) => median(results[m].map((r) => r.cpuMicrosPerEvent));
    console.log(
      `  ${workload}: median commit ${Math.round(eps('commit')).toLocaleString('en')} events/s, ${cpu('commit').toFixed(1)} µs CPU/event; ` +
        `key ${Math.round(eps('key')).toLocaleString('en')} events/s, ${cpu('key').toFixed(1)} µs CPU/event; ` +
        `key/commit throughput ${(eps('key') / eps('commit')).toFixed(2)}x, CPU/event ${(cpu('key') / cpu('commit')).toFixed(2)}x`,
    );
  }
} finally {
  await nc.close();
  await Promise.all([pgServer.dispose(), nats.dispose()]);
}
