// npm run bench (part 2): the relay end to end, Postgres → JetStream, against its limits measured in
// the same run on the same private servers (bench/README.md explains the scenarios and how to read
// the table). Each scenario inserts its rows once per repeat, then runs every contender on the same
// WAL, in an order that rotates between repeats; medians of the repeats are reported:
//   pg_recvlogical  the source limit: Postgres decoding the same slot data to /dev/null
//   lean            the sink limit: bench/lean-publisher.js sending the relay's own messages
//   naive           bench/naive-relay.js: pg-logical-replication + js.publish, same envelope and headers
//   sluice          `sluice run` as a child process
// Relays start after the insert and are timed from spawn until the stream holds every event; CPU
// (user + system, from /proc) covers the same span. Flags: --quick (small sizes), --only=a,b
// (scenario names), --cpu-prof (Sluice writes V8 CPU profiles into bench/results/profiles),
// --base=DIR (bulk scenarios also run the relay built in DIR, another checkout: contender `base`).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { findPostgresBinDir, startNats, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import {
  cpuMicros,
  isoMicros,
  median,
  nowMicros,
  percentile,
  rssSampler,
  syscallsOf,
} from './lib/measure.js';

const QUICK = process.argv.includes('--quick');
const CPU_PROF = process.argv.includes('--cpu-prof');
const ONLY = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
// Another checkout with a built relay (say `git worktree add ../base main && npm ci` there): its
// relay runs beside this one on the same WAL, on its own slot and stream, so a change is compared
// with its base in one run rather than across runs on a machine whose load moves.
const BASE = process.argv.find((a) => a.startsWith('--base='))?.slice(7);
const CONTENDERS = process.argv
  .find((a) => a.startsWith('--contenders='))
  ?.slice(13)
  .split(',');
// Sizes: the whole run takes about 10 minutes on 2 shared cores. Medians of 3 repeats at 200k rows
// move by less than the machine's noise against 1M rows (2026-12-04 runs), so the throughput
// scenarios use 200k; the 1M-row transaction is kept once, for Sluice, for its peak RSS.
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const BULK_ROWS = Number(process.env.BENCH_RELAY_ROWS ?? (QUICK ? 50_000 : 200_000));
const MODE_ROWS = Math.round(BULK_ROWS / 2);
const MEMORY_ROWS = Number(process.env.BENCH_MEMORY_ROWS ?? (QUICK ? 200_000 : 1_000_000));
const OUTBOX_TXNS = QUICK ? 100 : 300; // each: 100 rows + 100 outbox events of 1 KB
const STEADY_SECONDS = QUICK ? 3 : 5;
// js.publish awaited per message is slow (PERF-NOTES): the naive relay is timed over this many
// events (a rate, not a total), so it does not take most of the run.
const NAIVE_EVENTS = Math.min(BULK_ROWS, QUICK ? 10_000 : 30_000);

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.join(HERE, '../apps/relay/bin/sluice.js');
const RESULTS = path.join(HERE, 'results');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));

const ROW_SELECT = `SELECT g, 'customer-' || (g % 9973), (g % 100000) / 100.0, now(), 'note ' || md5(g::text)`;

// ---------------------------------------------------------------------------------------------
// Servers and fixtures

const pgServer = await startPostgres({
  // The naive relay stops reading (and answering keepalives) while its handler awaits PubAcks.
  settings: { wal_sender_timeout: '0', max_wal_size: '8GB', checkpoint_timeout: '30min' },
});
const nats = await startNats();
const nc = await connect({ servers: nats.url });
const jsm = await jetstreamManager(nc);
const db = new pg.Client({ connectionString: pgServer.url() });
await db.connect();
let nextId = 1;
const children = new Set();

function sluiceEnv(cloudEvents, base = false) {
  return {
    PATH: process.env.PATH,
    SLUICE_DATABASE_URL: pgServer.url(),
    SLUICE_NATS_URL: nats.url,
    SLUICE_TABLES: 'public.bench_rows',
    SLUICE_SLOT: 'bench_sluice',
    SLUICE_PUBLICATION: 'bench_sluice',
    SLUICE_STREAM: 'SL',
    SLUICE_SUBJECT_PREFIX: 'sl',
    SLUICE_SNAPSHOT: 'never',
    SLUICE_HTTP_PORT: '0',
    SLUICE_CLOUDEVENTS: cloudEvents ? 'on' : 'off',
    ...(base ? { SLUICE_SLOT: 'bench_base', SLUICE_STREAM: 'SB', SLUICE_SUBJECT_PREFIX: 'sb' } : {}),
  };
}

function start(command, args, env, { stdout = 'pipe' } = {}) {
  const child = spawn(command, args, { env, stdio: ['ignore', stdout, 'inherit'] });
  children.add(child);
  child.output = '';
  child.stdout?.on('data', (d) => {
    if (child.output.length < 1e6) child.output += d;
  });
  child.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  child.exited.then(() => children.delete(child));
  return child;
}

async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  await child.exited;
}

function startSluice(cloudEvents, profileName, base = false) {
  const args = [base ? path.resolve(BASE, 'apps/relay/bin/sluice.js') : BIN, 'run'];
  if (CPU_PROF && profileName) {
    const dir = path.join(RESULTS, 'profiles');
    fs.mkdirSync(dir, { recursive: true });
    args.unshift('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${profileName}.cpuprofile`);
  }
  return start(process.execPath, args, sluiceEnv(cloudEvents, base));
}

async function streamCount(stream) {
  return (await jsm.streams.info(stream)).state.messages;
}

async function waitCount(stream, n, what) {
  await waitFor(async () => (await streamCount(stream)) >= n, {
    timeoutMs: 30 * 60_000,
    intervalMs: 100,
    message: `${what}: ${stream} to hold ${n} messages`,
  });
}

async function setup() {
  const migrate = start(process.execPath, [BIN, 'migrate'], sluiceEnv(true));
  if ((await migrate.exited) !== 0) throw new Error(`sluice migrate failed: ${migrate.output}`);
  await db.query(
    'CREATE TABLE bench_rows (id int8 PRIMARY KEY, customer text, amount numeric, at timestamptz, note text)',
  );
  await db.query('CREATE PUBLICATION bench_pub FOR TABLE bench_rows, sluice.outbox');
  for (const slot of ['bench_recv', 'bench_naive', ...(BASE ? ['bench_base'] : [])]) {
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  }
  // Sluice's own slot, publication and stream, created by Sluice; its stream's settings are copied
  // for the other publishers' streams.
  const samples = {};
  for (const cloudEvents of [true, false]) samples[cloudEvents ? 'on' : 'off'] = await capture(cloudEvents);
  const { config } = await jsm.streams.info('SL');
  for (const [name, prefix] of [
    ['LN', 'ln'],
    ['NV', 'nv'],
  ]) {
    const { name: _n, subjects: _s, ...rest } = config;
    await jsm.streams.add({ ...rest, name, subjects: [`${prefix}.>`] });
  }
  await skipWal();
  return samples;
}

/** Every slot but Sluice's skips what is in the WAL now (samples, earlier scenarios' leftovers). */
async function skipWal(slots = ['bench_recv', 'bench_naive', 'bench_base']) {
  for (const slot of slots) {
    // Only a slot behind: one that confirmed past the last record already is refused.
    await db.query(
      `SELECT pg_replication_slot_advance(slot_name, pg_current_wal_lsn()) FROM pg_replication_slots
       WHERE slot_name = $1 AND confirmed_flush_lsn < pg_current_wal_lsn()`,
      [slot],
    );
  }
}

/** Runs Sluice on a small sample and keeps the messages it stored: what the lean publisher sends. */
async function capture(cloudEvents) {
  const child = startSluice(cloudEvents);
  await waitFor(() => child.output.includes('streaming from the replication slot'), {
    timeoutMs: 60_000,
    message: 'sluice to stream',
  });
  await insertRows(1000, 1000);
  await insertOutbox(2);
  await waitCount('SL', 1400, 'capture');
  await stop(child);
  const messages = [];
  const consumer = await jetstream(nc).consumers.get('SL');
  const iter = await consumer.consume();
  for await (const m of iter) {
    const headers = [];
    for (const [k, values] of m.headers) for (const v of values) headers.push([k, v]);
    messages.push({ subject: m.subject, headers, body: Buffer.from(m.data).toString('base64') });
    if (messages.length === 1400) break;
  }
  await iter.close();
  await jsm.streams.purge('SL');
  const mode = cloudEvents ? 'on' : 'off';
  const rows = path.join(TMP, `rows-${mode}.json`);
  const mixed = path.join(TMP, `mixed-${mode}.json`);
  fs.writeFileSync(rows, JSON.stringify(messages.slice(0, 1000)));
  fs.writeFileSync(mixed, JSON.stringify(messages.slice(1000)));
  return {
    rows,
    mixed,
    headerCount: messages[0].headers.length,
    bodyBytes: Buffer.from(messages[0].body, 'base64').length,
  };
}

async function insertRows(rows, perTxn) {
  const first = nextId;
  nextId += rows;
  if (perTxn >= rows) {
    await db.query(
      `INSERT INTO bench_rows ${ROW_SELECT} FROM generate_series(${first}::int8, ${first + rows - 1}::int8) g`,
    );
    return;
  }
  await db.query(`DO $$ BEGIN
    FOR i IN 0..${rows / perTxn - 1} LOOP
      INSERT INTO bench_rows ${ROW_SELECT}
        FROM generate_series(${first}::int8 + i * ${perTxn}, ${first}::int8 + (i + 1) * ${perTxn} - 1) g;
      COMMIT;
    END LOOP; END $$`);
}

/** Transactions of 100 row inserts and 100 outbox events with 1 KB payloads. */
async function insertOutbox(txns) {
  const first = nextId;
  nextId += txns * 100;
  await db.query(`DO $$ BEGIN
    FOR i IN 0..${txns - 1} LOOP
      INSERT INTO bench_rows ${ROW_SELECT} FROM generate_series(${first}::int8 + i * 100, ${first}::int8 + i * 100 + 99) g;
      INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
        SELECT gen_random_uuid(), 'order', g::text, 'OrderPlaced',
               jsonb_build_object('id', g, 'customer', 'customer-' || (g % 9973), 'lines', repeat('x', 920))
        FROM generate_series(${first}::int8 + i * 100, ${first}::int8 + i * 100 + 99) g;
      COMMIT;
    END LOOP; END $$`);
}

/** `rate` rows/s in 5-row transactions for `seconds`, paced inside Postgres (no client round trips). */
async function steadyLoad(rate, seconds) {
  const txns = Math.round((rate * seconds) / 5);
  const first = nextId;
  nextId += txns * 5;
  await db.query(`DO $$ DECLARE t0 timestamptz := clock_timestamp(); ahead float8; BEGIN
    FOR i IN 0..${txns - 1} LOOP
      INSERT INTO bench_rows ${ROW_SELECT} FROM generate_series(${first}::int8 + i * 5, ${first}::int8 + i * 5 + 4) g;
      COMMIT;
      ahead := extract(epoch FROM t0 + (i + 1) * ${5 / rate} * interval '1 second' - clock_timestamp());
      IF ahead > 0.001 THEN PERFORM pg_sleep(ahead); END IF;
    END LOOP; END $$`);
  return txns * 5;
}

// ---------------------------------------------------------------------------------------------
// Contenders, bulk: started after the insert, timed until every event is stored

async function bulkRecvlogical(events, endLsn) {
  const bin = path.join(findPostgresBinDir(), 'pg_recvlogical');
  const startedAt = performance.now();
  const child = start('bash', [
    '-c',
    `"${bin}" -d "${pgServer.url()}" -S bench_recv --start -E ${endLsn} --no-loop -f /dev/null ` +
      `-o proto_version=1 -o publication_names=bench_pub && times`,
  ]);
  const code = await child.exited;
  const seconds = (performance.now() - startedAt) / 1000;
  if (code !== 0) throw new Error(`pg_recvlogical failed (${code})`);
  // `times`: the shell's own user/system time, then its children's.
  const m = child.output
    .trim()
    .split('\n')
    .at(-1)
    .match(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/);
  const cpu = m ? (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1e6 : Number.NaN;
  return { events, seconds, cpuMicros: cpu, peakRss: Number.NaN };
}

async function bulkLean(events, sample) {
  const startedAt = performance.now();
  const child = start(process.execPath, [path.join(HERE, 'lean-publisher.js')], {
    PATH: process.env.PATH,
    NATS_URL: nats.url,
    SAMPLE: sample,
    COUNT: String(events),
    PREFIX: 'ln',
    STREAM: 'LN',
  });
  const code = await child.exited;
  const seconds = (performance.now() - startedAt) / 1000;
  const r = JSON.parse(child.output.trim().split('\n').at(-1) ?? '{}');
  if (code !== 0 || r.failed > 0) throw new Error(`lean publisher failed (${code}): ${child.output}`);
  await jsm.streams.purge('LN');
  return { events, seconds, cpuMicros: r.cpuMicros, peakRss: r.maxRss, syscalls: r.syscalls };
}

async function bulkRelay(child, stream, events) {
  const startedAt = performance.now();
  const rss = rssSampler(child.pid);
  await waitCount(stream, events, 'bulk');
  const seconds = (performance.now() - startedAt) / 1000;
  const cpu = cpuMicros(child.pid);
  const syscalls = syscallsOf(child.pid);
  const peakRss = rss.stop();
  return { events, seconds, cpuMicros: cpu, peakRss, syscalls };
}

function startNaive(cloudEvents) {
  return start(process.execPath, [path.join(HERE, 'naive-relay.js')], {
    PATH: process.env.PATH,
    DATABASE_URL: pgServer.url(),
    NATS_URL: nats.url,
    SLOT: 'bench_naive',
    PUBLICATION: 'bench_pub',
    STREAM: 'NV',
    PREFIX: 'nv',
    CLOUDEVENTS: cloudEvents ? 'on' : 'off',
  });
}

async function bulkNaive(events, cloudEvents) {
  const child = startNaive(cloudEvents);
  try {
    return await bulkRelay(child, 'NV', Math.min(events, NAIVE_EVENTS));
  } finally {
    await stop(child, 'SIGKILL');
    await jsm.streams.purge('NV');
  }
}

async function bulkSluice(events, cloudEvents, profileName, base = false) {
  const child = startSluice(cloudEvents, profileName, base);
  const stream = base ? 'SB' : 'SL';
  try {
    return await bulkRelay(child, stream, events);
  } finally {
    await stop(child);
    await jsm.streams.purge(stream);
  }
}

/** Inserts once per repeat, then runs each contender on it, rotating their order between repeats. */
async function bulkScenario(name, { insert, events, contenders, sample, cloudEvents, repeats = REPEATS }) {
  if (BASE && contenders.includes('sluice')) contenders = [...contenders, 'base'];
  contenders = contenders.filter((c) => CONTENDERS === undefined || CONTENDERS.includes(c) || c === 'base');
  if (contenders.length === 0) return summarise(name, {});
  const runs = Object.fromEntries(contenders.map((c) => [c, []]));
  for (let r = 0; r < repeats; r++) {
    await skipWal();
    await insert();
    const [{ lsn: endLsn }] = (await db.query('SELECT pg_current_wal_lsn() AS lsn')).rows;
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
    for (const c of order) {
      let result;
      if (c === 'pg_recvlogical') result = await bulkRecvlogical(events.rows, endLsn);
      else if (c === 'lean') result = await bulkLean(events.all, sample);
      else if (c === 'naive') result = await bulkNaive(events.rows, cloudEvents);
      else if (c === 'base') result = await bulkSluice(events.all, cloudEvents, `${name}-base-${r}`, true);
      else result = await bulkSluice(events.all, cloudEvents, `${name}-${r}`);
      runs[c].push(result);
      log(
        `  ${name} #${r + 1} ${c.padEnd(15)} ${fmtRate(result.events / result.seconds)}/s  ${fmtCpu(result.cpuMicros / result.events)} µs/event${syscallText(result)}`,
      );
    }
  }
  return summarise(name, runs);
}

// ---------------------------------------------------------------------------------------------
// Steady: the relay runs, Postgres commits 5-row transactions at a fixed rate, a core subscriber
// on the relay's stream subjects measures commit (the body's source.commitTime) → message seen.

async function steadyRun(contender, rate, cloudEvents, repeat) {
  // Every slot sees every run's rows: without this a relay would first work off the rows of the
  // runs before its own, and the latency would measure that backlog.
  await skipWal(['bench_recv', 'bench_naive', 'bench_sluice']);
  const child =
    contender === 'sluice' ? startSluice(cloudEvents, `steady-${rate}-${repeat}`) : startNaive(cloudEvents);
  const [stream, prefix, slot] =
    contender === 'sluice' ? ['SL', 'sl', 'bench_sluice'] : ['NV', 'nv', 'bench_naive'];
  try {
    await waitFor(
      async () =>
        (await db.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]
          ?.active,
      { timeoutMs: 60_000, message: `${contender} to stream` },
    );
    const latencies = [];
    const sub = nc.subscribe(`${prefix}.>`, {
      callback: (_err, msg) => {
        const now = nowMicros();
        const text = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.length).toString('latin1');
        const m = text.match(/"commitTime":"([^"]+)"/);
        if (m) latencies.push((now - isoMicros(m[1])) / 1000);
      },
    });
    await nc.flush();
    const rss = rssSampler(child.pid);
    const cpu0 = cpuMicros(child.pid);
    const io0 = syscallsOf(child.pid);
    const events = await steadyLoad(rate, STEADY_SECONDS);
    await waitFor(() => latencies.length >= events, {
      timeoutMs: 120_000,
      message: `${contender}: ${events} messages at ${rate} rows/s`,
    });
    const cpu = cpuMicros(child.pid) - cpu0;
    const io = syscallsOf(child.pid);
    const syscalls = io && io0 && { reads: io.reads - io0.reads, writes: io.writes - io0.writes };
    sub.unsubscribe();
    latencies.sort((a, b) => a - b);
    return {
      events,
      seconds: STEADY_SECONDS,
      cpuMicros: cpu,
      peakRss: rss.stop(),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1),
      syscalls,
    };
  } finally {
    await stop(child, contender === 'sluice' ? 'SIGTERM' : 'SIGKILL');
    await jsm.streams.purge(stream);
    await skipWal();
  }
}

async function steadyScenario(name, rate, all = ['naive', 'sluice']) {
  const contenders = all.filter((c) => CONTENDERS === undefined || CONTENDERS.includes(c));
  const runs = Object.fromEntries(contenders.map((c) => [c, []]));
  for (let r = 0; r < REPEATS; r++) {
    for (const c of r % 2 === 0 ? contenders : [...contenders].reverse()) {
      const result = await steadyRun(c, rate, true, r);
      runs[c].push(result);
      log(
        `  ${name} #${r + 1} ${c.padEnd(15)} p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  ${fmtCpu(result.cpuMicros / result.events)} µs/event${syscallText(result)}`,
      );
    }
  }
  return summarise(name, runs);
}

// ---------------------------------------------------------------------------------------------
// Reporting

const log = (line) => process.stderr.write(`${line}\n`);
const syscallText = ({ syscalls: s, events }) =>
  s
    ? `  ${((1000 * s.writes) / events).toFixed(1)} writes, ${((1000 * s.reads) / events).toFixed(1)} reads per 1k events`
    : '';
const fmtRate = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '-');
const fmtCpu = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const fmtMs = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const mib = (x) => (Number.isFinite(x) && x > 0 ? `${Math.round(x / 1048576)} MiB` : '-');

function summarise(scenario, runs) {
  const rows = {};
  for (const [c, rs] of Object.entries(runs)) {
    rows[c] = {
      eventsPerSecond: median(rs.map((r) => r.events / r.seconds)),
      cpuMicrosPerEvent: median(rs.map((r) => r.cpuMicros / r.events)),
      peakRss: Math.max(...rs.map((r) => r.peakRss).filter(Number.isFinite), 0) || null,
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      runs: rs,
    };
  }
  return { scenario, contenders: rows };
}

function printTable(results, leanCpuFor) {
  const head = [
    'scenario',
    'contender',
    'events/s',
    'CPU µs/event',
    'p50 ms',
    'p99 ms',
    'peak RSS',
    '× lean events/s',
    '× lean CPU',
  ];
  const lines = [head];
  for (const { scenario, contenders } of results) {
    const lean = contenders.lean ?? { eventsPerSecond: Number.NaN, cpuMicrosPerEvent: leanCpuFor(scenario) };
    for (const [c, r] of Object.entries(contenders)) {
      lines.push([
        scenario,
        c,
        fmtRate(r.eventsPerSecond),
        fmtCpu(r.cpuMicrosPerEvent),
        fmtMs(r.p50),
        fmtMs(r.p99),
        mib(r.peakRss),
        c === 'lean' ||
        c === 'pg_recvlogical' ||
        !Number.isFinite(lean.eventsPerSecond) ||
        scenario.startsWith('steady')
          ? '-'
          : (r.eventsPerSecond / lean.eventsPerSecond).toFixed(2),
        c === 'lean' || c === 'pg_recvlogical'
          ? '-'
          : (r.cpuMicrosPerEvent / lean.cpuMicrosPerEvent).toFixed(2),
      ]);
    }
  }
  const widths = head.map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
  const row = (l) => `| ${l.map((v, i) => String(v).padEnd(widths[i])).join(' | ')} |`;
  const out = [row(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.slice(1).map(row)];
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

const wanted = (name) => ONLY === undefined || ONLY.includes(name);
const results = [];
const startedAt = Date.now();
try {
  log(
    `bench: ${QUICK ? 'quick' : 'full'} run, ${REPEATS} repeats, ${os.cpus().length} CPUs, load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const samples = await setup();
  log(
    `  message: ${samples.on.headerCount} headers (CloudEvents on), ${samples.off.headerCount} (off), body ${samples.on.bodyBytes} bytes`,
  );
  const all = ['pg_recvlogical', 'lean', 'naive', 'sluice'];
  if (wanted('bulk-1txn')) {
    results.push(
      await bulkScenario('bulk-1txn', {
        insert: () => insertRows(BULK_ROWS, BULK_ROWS),
        events: { rows: BULK_ROWS, all: BULK_ROWS },
        contenders: all,
        sample: samples.on.rows,
        cloudEvents: true,
      }),
    );
  }
  if (wanted('bulk-1000')) {
    results.push(
      await bulkScenario('bulk-1000', {
        insert: () => insertRows(BULK_ROWS, 1000),
        events: { rows: BULK_ROWS, all: BULK_ROWS },
        contenders: all,
        sample: samples.on.rows,
        cloudEvents: true,
      }),
    );
  }
  if (wanted('headers-off')) {
    results.push(
      await bulkScenario('headers-off', {
        insert: () => insertRows(MODE_ROWS, 1000),
        events: { rows: MODE_ROWS, all: MODE_ROWS },
        contenders: ['lean', 'sluice'],
        sample: samples.off.rows,
        cloudEvents: false,
      }),
    );
  }
  if (wanted('outbox')) {
    results.push(
      await bulkScenario('outbox', {
        insert: () => insertOutbox(OUTBOX_TXNS),
        events: { rows: OUTBOX_TXNS * 200, all: OUTBOX_TXNS * 200 },
        contenders: ['pg_recvlogical', 'lean', 'sluice'],
        sample: samples.on.mixed,
        cloudEvents: true,
      }),
    );
  }
  if (wanted('steady-5k')) results.push(await steadyScenario('steady-5k', 5000));
  // The naive relay cannot keep up with 20,000 rows/s (p50 10 s on 2026-12-04): its latency there
  // measures its backlog, and draining it took a minute per repeat.
  if (wanted('steady-20k')) results.push(await steadyScenario('steady-20k', 20000, ['sluice']));
  if (wanted('memory-1m')) {
    // One run: Sluice through a 1M-row transaction, for its peak RSS (the target is ≤ 256 MB).
    results.push(
      await bulkScenario('memory-1m', {
        insert: () => insertRows(MEMORY_ROWS, MEMORY_ROWS),
        events: { rows: MEMORY_ROWS, all: MEMORY_ROWS },
        contenders: ['sluice'],
        cloudEvents: true,
        repeats: 1,
      }),
    );
  }

  // Steady runs have no lean publisher of their own: their CPU is compared with the bulk one's.
  const bulkLeanCpu = results.find((r) => r.contenders.lean && r.scenario.startsWith('bulk'))?.contenders.lean
    .cpuMicrosPerEvent;
  const table = printTable(results, () => bulkLeanCpu ?? Number.NaN);
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`;
  console.log(`\nrelay bench (${QUICK ? 'quick' : 'full'}, median of ${REPEATS}), ${machine}\n${table}`);
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(
    RESULTS,
    `relay-${QUICK ? 'quick-' : ''}${new Date().toISOString().replaceAll(':', '-').slice(0, 19)}.json`,
  );
  fs.writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), quick: QUICK, repeats: REPEATS, machine, seconds: (Date.now() - startedAt) / 1000, sizes: { BULK_ROWS, MODE_ROWS, MEMORY_ROWS, OUTBOX_TXNS, STEADY_SECONDS, NAIVE_EVENTS }, results }, null, 2)}\n`,
  );
  console.log(
    `\nwrote ${path.relative(process.cwd(), file)} (${Math.round((Date.now() - startedAt) / 1000)} s)`,
  );
} finally {
  for (const child of children) child.kill('SIGKILL');
  await db.end().catch(() => {});
  await nc.close();
  await Promise.all([pgServer.dispose(), nats.dispose()]);
  fs.rmSync(TMP, { recursive: true, force: true });
}
