// The fair baseline of bench/relay.js: the straightforward relay PERF-NOTES measured, publishing
// the same envelope and headers as Sluice. pg-logical-replication parses each message, a handler
// builds the envelope object and JSON.stringify's it, sets the same headers (CloudEvents binary
// mode, or only the id with CLOUDEVENTS=off) and publishes with js.publish and a msgID, at most
// 1,000 PubAcks outstanding; the slot is acknowledged at each commit once every publish of the
// transaction is acknowledged.
import { jetstream } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';

const STREAM = process.env.STREAM;
const PREFIX = process.env.PREFIX;
const SLOT = process.env.SLOT;
const cloudEvents = process.env.CLOUDEVENTS !== 'off';
const nc = await connect({ servers: process.env.NATS_URL });
const js = jetstream(nc);
const service = new LogicalReplicationService(
  { connectionString: process.env.DATABASE_URL },
  { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
);

// Postgres' LSN text form (no leading zeros), as Sluice writes it.
const lsnText = (lsn) => {
  const [hi, lo] = lsn.split('/');
  return `${parseInt(hi, 16).toString(16).toUpperCase()}/${parseInt(lo, 16).toString(16).toUpperCase()}`;
};
// Microseconds since the Unix epoch → ISO 8601 with 6 fractional digits, as Sluice writes it.
const isoMicros = (us) =>
  `${new Date(Number(us / 1000n)).toISOString().slice(0, -1)}${String(us % 1000n).padStart(3, '0')}Z`;

const pending = [];
let previousId; // the last id published (commit order: the next message expects it)
let tx;
let seq = 0;
service.on('data', async (lsn, msg) => {
  if (msg.tag === 'begin') {
    tx = {
      commitLsn: lsnText(msg.commitLsn),
      xid: msg.xid,
      commitTime: isoMicros(msg.commitTime),
    };
    seq = 0;
  } else if (msg.tag === 'insert') {
    const rel = msg.relation;
    const source = {
      lsn: lsnText(lsn),
      commitLsn: tx.commitLsn,
      xid: tx.xid,
      commitTime: tx.commitTime,
      seq,
      snapshot: null,
    };
    const key = {};
    for (const k of rel.keyColumns) key[k] = msg.new[k];
    const envelope = {
      op: 'insert',
      schema: rel.schema,
      table: rel.name,
      key,
      before: null,
      after: msg.new,
      unchanged: [],
      source,
    };
    const id = `${SLOT}:${tx.commitLsn}:${seq++}`;
    const h = headers();
    h.set('Nats-Expected-Stream', STREAM);
    if (cloudEvents) {
      h.set('ce-specversion', '1.0');
      h.set('ce-id', id);
      h.set('ce-source', `sluice/${STREAM}`);
      h.set('ce-type', 'io.sluice.cdc.insert');
      h.set('ce-subject', `${rel.schema}.${rel.name}`);
      h.set('ce-time', tx.commitTime);
      h.set('content-type', 'application/json');
      h.set('sluice-commit-lsn', tx.commitLsn);
      h.set('sluice-seq', String(source.seq));
    }
    const lastId = previousId;
    previousId = id;
    pending.push(
      js.publish(`${PREFIX}.cdc.${rel.schema}.${rel.name}.insert`, JSON.stringify(envelope), {
        msgID: id,
        // Commit order, as Sluice (SLUICE_ORDERING=commit): each message expects its predecessor.
        expect: lastId === undefined ? undefined : { lastMsgID: lastId },
        headers: h,
      }),
    );
    if (pending.length >= 1000) await pending.shift();
  } else if (msg.tag === 'commit') {
    await Promise.all(pending.splice(0));
    await service.acknowledge(lsn);
  }
});
service.on('error', (err) => console.error('naive relay error', err));
await service.subscribe(
  new PgoutputPlugin({ protoVersion: 1, publicationNames: [process.env.PUBLICATION] }),
  SLOT,
);
