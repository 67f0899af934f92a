// One run for bench/hot-path.js: the pipeline and NATS sink of the checkout ROOT (built) in this
// process, N synthetic row changes (the bench table's row shape) in TXN-row transactions pushed as
// the Postgres source does, into a memory stream on nats-server at URL. Prints CPU µs per event of
// this process from the first push to the last acknowledgement (start-up excluded) and events/s.
//   node bench/lib/hot-path-run.js ROOT URL STREAM N TXN
const [root, url, stream, n, txn] = process.argv.slice(2);
const { createPipeline } = await import(`${root}/packages/pipeline/dist/index.js`);
const { createNatsSink } = await import(`${root}/packages/sink-nats/dist/index.js`);
const { createMetrics } = await import(`${root}/packages/metrics/dist/index.js`);

const events = Number(n);
const perTxn = Number(txn);
const metrics = createMetrics({ buildInfo: { version: 'bench', node: process.version } });
const sink = createNatsSink({
  servers: url,
  stream,
  subjectPrefix: stream.toLowerCase(),
  storage: 'memory',
  metrics,
});
await sink.start();
let finished;
const done = new Promise((resolve) => {
  finished = resolve;
});
const pipeline = createPipeline({
  sink,
  source: {
    acknowledge: (cursor) => {
      if (cursor === events) finished();
    },
  },
  onFatal: (err) => {
    console.error(err);
    process.exit(1);
  },
  compareCursor: (a, b) => a - b,
  metrics,
});
const out = pipeline.output;
const time = new Date().toISOString();
const cpu = process.cpuUsage();
const started = performance.now();
for (let i = 1; i <= events; i++) {
  const t = Math.floor((i - 1) / perTxn);
  const lsn = `0/${(0x1000000 + t * 0x10000).toString(16).toUpperCase()}`;
  const pushed = out.push({
    kind: 'change',
    id: `${lsn}-${(i - 1) % perTxn}`,
    op: 'insert',
    schema: 'public',
    table: 'bench_rows',
    key: { id: i },
    before: null,
    after: {
      id: i,
      customer: `customer-${i % 9973}`,
      amount: ((i % 100000) / 100).toFixed(2),
      at: time,
      note: `note ${i.toString(16).padStart(32, '0')}`,
    },
    unchanged: [],
    source: { lsn, commitLsn: lsn, xid: 700 + t, commitTime: time, seq: (i - 1) % perTxn, snapshot: null },
  });
  if (i % perTxn === 0 || i === events) out.commit(i);
  if (!out.hasRoom()) await pushed;
}
await done;
const used = process.cpuUsage(cpu);
const seconds = (performance.now() - started) / 1000;
console.log(
  JSON.stringify({
    cpuMicrosPerEvent: (used.user + used.system) / events,
    eventsPerSecond: events / seconds,
  }),
);
pipeline.close();
await sink.close();
process.exit(0);
