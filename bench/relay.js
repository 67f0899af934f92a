// npm run bench (part 2): one 1M-row transaction end to end, Postgres → JetStream, with PubAcks
// awaited before the slot is acknowledged. Sluice (`sluice run` as a child process) against a naive
// relay built from pg-logical-replication + nats.js js.publish (the shape PERF-NOTES measured),
// on the same private servers in the same run. Prints rows/s, peak RSS and the ratios.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startNats, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';

const ROWS = Number(process.env.BENCH_RELAY_ROWS ?? 1_000_000);
const BIN = fileURLToPath(new URL('../apps/relay/bin/sluice.js', import.meta.url));

function rssOf(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function streamCount(nc, stream) {
  const jsm = await jetstreamManager(nc);
  try {
    return (await jsm.streams.info(stream)).state.messages;
  } catch {
    return 0;
  }
}

async function insertOneTransaction(url, table) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    `INSERT INTO ${table} SELECT g, 'customer-' || (g % 9973), (g % 100000) / 100.0, now(), 'note ' || md5(g::text)
     FROM generate_series(1, ${ROWS}) g`,
  );
  await client.end();
}

/** Waits for ROWS messages while sampling the relay's RSS; returns seconds and peak RSS. */
async function measure(nc, stream, pid, startedAt) {
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
  }, 100);
  await waitFor(async () => (await streamCount(nc, stream)) >= ROWS, {
    timeoutMs: 30 * 60_000,
    intervalMs: 250,
    message: `${stream} to hold ${ROWS} messages`,
  });
  clearInterval(sampler);
  return { seconds: (Date.now() - startedAt) / 1000, peakRss: peak };
}

async function runSluice(pgServer, nats, nc) {
  await pgServer.query(
    'CREATE TABLE sluice_rows (id int8 PRIMARY KEY, customer text, amount numeric, at timestamptz, note text)',
  );
  const child = spawn(process.execPath, [BIN, 'run'], {
    env: {
      PATH: process.env.PATH,
      SLUICE_DATABASE_URL: pgServer.url(),
      SLUICE_NATS_URL: nats.url,
      SLUICE_TABLES: 'public.sluice_rows',
      SLUICE_SLOT: 'bench_sluice',
      SLUICE_PUBLICATION: 'bench_sluice',
      SLUICE_STREAM: 'BENCH_SLUICE',
      SLUICE_SUBJECT_PREFIX: 'bench_sluice',
      SLUICE_SNAPSHOT: 'never',
      SLUICE_HTTP_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    if (out.length < 1e6) out += d;
  });
  await waitFor(() => out.includes('"msg":"streaming from the replication slot"'), {
    timeoutMs: 60_000,
    message: 'sluice to stream',
  });
  const idleRss = rssOf(child.pid);
  const startedAt = Date.now();
  await insertOneTransaction(pgServer.url(), 'sluice_rows');
  const result = await measure(nc, 'BENCH_SLUICE', child.pid, startedAt);
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  return { ...result, idleRss };
}

/** The naive relay (bench/naive-relay.js) as a child process, measured the same way as Sluice. */
async function runBaseline(pgServer, nats, nc) {
  await pgServer.query(
    'CREATE TABLE naive_rows (id int8 PRIMARY KEY, customer text, amount numeric, at timestamptz, note text)',
  );
  await pgServer.query('CREATE PUBLICATION bench_naive FOR TABLE naive_rows');
  await pgServer.query(`SELECT pg_create_logical_replication_slot('bench_naive', 'pgoutput')`);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'BENCH_NAIVE',
    subjects: ['bench_naive.>'],
    duplicate_window: 2 * 3600 * 1e9,
  });
  const child = spawn(process.execPath, [fileURLToPath(new URL('./naive-relay.js', import.meta.url))], {
    env: { PATH: process.env.PATH, DATABASE_URL: pgServer.url(), NATS_URL: nats.url },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  await waitFor(
    async () =>
      (await pgServer.query(`SELECT active FROM pg_replication_slots WHERE slot_name = 'bench_naive'`))[0]
        ?.active,
    { timeoutMs: 30_000, message: 'naive relay to stream' },
  );
  const idleRss = rssOf(child.pid);
  const startedAt = Date.now();
  await insertOneTransaction(pgServer.url(), 'naive_rows');
  const result = await measure(nc, 'BENCH_NAIVE', child.pid, startedAt);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  return { ...result, idleRss };
}

const mb = (bytes) => `${Math.round(bytes / 1048576)} MiB`;

async function runRelayBench() {
  // The naive relay stops reading (and so answering keepalives) while its handler awaits PubAcks;
  // without this the walsender would drop it mid-transaction after wal_sender_timeout.
  const [pgServer, nats] = await Promise.all([
    startPostgres({ settings: { wal_sender_timeout: '0' } }),
    startNats(),
  ]);
  const nc = await connect({ servers: nats.url });
  try {
    console.log(
      `\nrelay: one ${ROWS.toLocaleString('en')}-row transaction, Postgres → JetStream, acked after PubAck`,
    );
    const baseline = await runBaseline(pgServer, nats, nc);
    const sluice = await runSluice(pgServer, nats, nc);
    for (const [name, r] of [
      ['sluice', sluice],
      ['naive (pg-logical-replication + js.publish)', baseline],
    ]) {
      console.log(
        `  ${name.padEnd(44)} ${Math.round(ROWS / r.seconds)
          .toLocaleString('en')
          .padStart(9)} rows/s  peak RSS ${mb(r.peakRss)} (idle ${mb(r.idleRss)})`,
      );
    }
    console.log(
      `  throughput ratio ${(baseline.seconds / sluice.seconds).toFixed(2)}x, peak RSS ratio ${(sluice.peakRss / baseline.peakRss).toFixed(2)}x`,
    );
  } finally {
    await nc.close();
    await Promise.all([pgServer.dispose(), nats.dispose()]);
  }
}

await runRelayBench();
