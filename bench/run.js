// npm run bench: decodes ≥1M captured Insert messages (plus Begin/Commit) with Sluice's decoder and
// value layer, and with pg-logical-replication's parser, on the same bytes in the same run.
// Prints messages/s for each and the ratio. Target: Sluice ≥ 3x. Not a test: nothing here fails CI.
import { fileURLToPath } from 'node:url';
import { PgOutputDecoder, tupleToRow } from '@sluice/pgoutput';
// Not re-exported from the package index; the parser is what its pgoutput plugin runs per message.
import { PgoutputParser } from 'pg-logical-replication/dist/output-plugins/pgoutput/pgoutput-parser.js';
import { loadOrCapture } from './capture.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const file = fileURLToPath(new URL(`./data/pgoutput-${ROWS}.bin`, import.meta.url));

function sluice(messages) {
  const decoder = new PgOutputDecoder({ protocolVersion: 1 });
  const relations = new Map();
  let rows = 0;
  let checksum = 0;
  for (const bytes of messages) {
    const msg = decoder.decode(bytes);
    if (msg.tag === 'relation') relations.set(msg.relationOid, msg.columns);
    else if (msg.tag === 'insert') {
      const { row } = tupleToRow(relations.get(msg.relationOid), msg.new);
      if (row.paid) checksum++;
      rows++;
    }
  }
  return { rows, checksum };
}

function baseline(messages) {
  const parser = new PgoutputParser();
  let rows = 0;
  let checksum = 0;
  for (const bytes of messages) {
    const msg = parser.parse(bytes);
    if (msg.tag === 'insert') {
      if (msg.new.paid) checksum++;
      rows++;
    }
  }
  return { rows, checksum };
}

function measure(name, fn, messages) {
  const start = process.hrtime.bigint();
  const result = fn(messages);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { name, seconds, rate: messages.length / seconds, ...result };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const messages = await loadOrCapture(file, ROWS);
const inserts = messages.filter((m) => m[0] === 0x49).length;
console.log(
  `pgoutput stream: ${messages.length} messages (${inserts} Insert), ${ROUNDS} rounds each, alternating`,
);
const rates = { sluice: [], baseline: [] };
for (let round = 0; round < ROUNDS; round++) {
  const b = measure('baseline', baseline, messages);
  const s = measure('sluice', sluice, messages);
  if (s.rows !== b.rows || s.checksum !== b.checksum) {
    throw new Error(`decoders disagree: sluice ${s.rows}/${s.checksum}, baseline ${b.rows}/${b.checksum}`);
  }
  rates.sluice.push(s.rate);
  rates.baseline.push(b.rate);
  console.log(
    `round ${round + 1}: sluice ${Math.round(s.rate).toLocaleString('en')} msg/s, pg-logical-replication ${Math.round(b.rate).toLocaleString('en')} msg/s`,
  );
}
const s = median(rates.sluice);
const b = median(rates.baseline);
console.log(`\ndecode + value layer, median of ${ROUNDS}:`);
console.log(`  sluice                  ${Math.round(s).toLocaleString('en').padStart(12)} msg/s`);
console.log(`  pg-logical-replication  ${Math.round(b).toLocaleString('en').padStart(12)} msg/s`);
console.log(`  ratio                   ${(s / b).toFixed(2)}x (target ≥ 3x)`);
