// The sink limit of bench/relay.js: what nats.js can publish of the relay's own messages. Reads a
// sample of messages the relay stored (subject, headers, body; bench/relay.js captures it), then
// publishes COUNT of them, cycling through the sample, each with a unique Nats-Msg-Id: nats.js core
// `publish` with a reply subject under one wildcard inbox subscription that counts PubAcks, at most
// IN_FLIGHT outstanding, headers built per message as any publisher would. Where the relay chains
// its messages (SLUICE_ORDERING=commit: `Nats-Expected-Last-Msg-Id`), so does this publisher: each
// message expects its predecessor's id. Prints one JSON line with its CPU time once every PubAck
// arrived.
import fs from 'node:fs';
import { connect, createInbox, headers } from '@nats-io/transport-node';

const COUNT = Number(process.env.COUNT);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 2000);
const sample = JSON.parse(fs.readFileSync(process.env.SAMPLE, 'utf8')).map((m) => ({
  // Same token count and lengths as the relay's subject, in this publisher's own stream.
  subject: process.env.PREFIX + m.subject.slice(m.subject.indexOf('.')),
  // Its own id per message; its own stream where the relay's message names the relay's.
  headers: m.headers
    .filter(([k]) => !['Nats-Msg-Id', 'Nats-Expected-Last-Msg-Id', 'Nats-Expected-Last-Sequence'].includes(k))
    .map(([k, v]) => [k, k === 'Nats-Expected-Stream' ? process.env.STREAM : v]),
  body: Buffer.from(m.body, 'base64'),
  chained: m.headers.some(([k]) => k.startsWith('Nats-Expected-Last-')),
}));

const chained = sample.some((m) => m.chained);
const nc = await connect({ servers: process.env.NATS_URL, noAsyncTraces: true });
const inbox = `${createInbox()}.`;
let sent = 0;
let acked = 0;
let failed = 0;
let firstError;
let done;
const finished = new Promise((resolve) => {
  done = resolve;
});
const run = `${process.pid.toString(36)}-${Date.now().toString(36)}-`;

nc.subscribe(`${inbox}*`, {
  callback: (_err, msg) => {
    acked++;
    // A PubAck with an error has "error" in its JSON: a cheap check that keeps the count honest.
    if (msg.data.length > 0 && msg.data[2] === 0x65 /* {"e */) {
      failed++;
      firstError ??= new TextDecoder().decode(msg.data);
    }
    if (acked === COUNT) done();
    else if (sent - acked <= IN_FLIGHT / 2 && sent < COUNT) setImmediate(pump);
  },
});

let pumping = false;
function pump() {
  if (pumping) return;
  pumping = true;
  // Synchronously, so nats.js writes the batch to the socket together (PERF-NOTES finding 2).
  while (sent < COUNT && sent - acked < IN_FLIGHT) {
    const m = sample[sent % sample.length];
    const h = headers();
    h.set('Nats-Msg-Id', run + sent);
    if (chained && sent > 0) h.set('Nats-Expected-Last-Msg-Id', run + (sent - 1));
    for (const [k, v] of m.headers) h.append(k, v);
    nc.publish(m.subject, m.body, { reply: inbox + sent, headers: h });
    sent++;
  }
  pumping = false;
}

pump();
await finished;
const cpu = process.cpuUsage();
const io = fs.readFileSync('/proc/self/io', 'utf8');
const syscalls = { reads: Number(io.match(/syscr: (\d+)/)[1]), writes: Number(io.match(/syscw: (\d+)/)[1]) };
process.stdout.write(
  `${JSON.stringify({ acked, failed, firstError, cpuMicros: cpu.user + cpu.system, maxRss: process.resourceUsage().maxRSS * 1024, syscalls })}\n`,
);
await nc.close();
