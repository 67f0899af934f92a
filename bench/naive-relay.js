// The baseline of bench/relay.js: the straightforward relay PERF-NOTES measured. A per-message
// handler publishes with js.publish and a msgID, at most 1,000 PubAcks outstanding, and
// acknowledges the slot at each commit once every publish of the transaction is acknowledged.
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';

const nc = await connect({ servers: process.env.NATS_URL });
const js = jetstream(nc);
const service = new LogicalReplicationService(
  { connectionString: process.env.DATABASE_URL },
  { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
);
const pending = [];
let commitLsn = '';
let seq = 0;
service.on('data', async (lsn, msg) => {
  if (msg.tag === 'begin') {
    commitLsn = msg.commitLsn;
    seq = 0;
  } else if (msg.tag === 'insert') {
    const id = `${commitLsn}:${seq++}`;
    pending.push(js.publish('bench_naive.cdc.naive_rows.insert', JSON.stringify(msg.new), { msgID: id }));
    if (pending.length >= 1000) await pending.shift();
  } else if (msg.tag === 'commit') {
    await Promise.all(pending.splice(0));
    await service.acknowledge(lsn);
  }
});
service.on('error', (err) => console.error('naive relay error', err));
await service.subscribe(
  new PgoutputPlugin({ protoVersion: 1, publicationNames: ['bench_naive'] }),
  'bench_naive',
);
