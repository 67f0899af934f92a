// Captures a large pgoutput stream from a private Postgres (testkit) once and caches it under
// bench/data/, so repeated runs measure decoding only. Format: [u32 length][message bytes]...
import fs from 'node:fs';
import path from 'node:path';
import { startPostgres } from '@sluice/testkit';
import pg from 'pg';

const TXNS = 100;

export async function loadOrCapture(file, rows) {
  if (fs.existsSync(file)) return readStream(file);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const server = await startPostgres();
  try {
    const client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    await client.query(`CREATE TABLE bench (
      id int8 PRIMARY KEY, customer text NOT NULL, amount numeric(12,2) NOT NULL,
      created_at timestamptz NOT NULL, paid bool NOT NULL, qty int4 NOT NULL, note text)`);
    await client.query('CREATE PUBLICATION bench FOR TABLE bench');
    await client.query(`SELECT pg_create_logical_replication_slot('bench', 'pgoutput')`);
    const perTxn = rows / TXNS;
    for (let t = 0; t < TXNS; t++) {
      await client.query(
        `INSERT INTO bench SELECT g, 'customer-' || (g % 9973), (g % 100000) / 100.0,
           '2026-11-21 06:00:00+00'::timestamptz + g * interval '1 second', g % 2 = 0, g % 50,
           'order note ' || md5(g::text)
         FROM generate_series($1::int8, $2::int8) g`,
        [t * perTxn + 1, (t + 1) * perTxn],
      );
    }
    const out = fs.openSync(file, 'w');
    let messages = 0;
    for (;;) {
      const { rows: batch } = await client.query({
        text: `SELECT data FROM pg_logical_slot_get_binary_changes('bench', NULL, 100000,
                 'proto_version', '1', 'publication_names', 'bench')`,
        types: { getTypeParser: () => (v) => Buffer.from(v.slice(2), 'hex') },
      });
      if (batch.length === 0) break;
      const chunks = [];
      for (const { data } of batch) {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(data.length);
        chunks.push(len, data);
      }
      fs.writeSync(out, Buffer.concat(chunks));
      messages += batch.length;
    }
    fs.closeSync(out);
    await client.end();
    process.stderr.write(`captured ${messages} messages into ${file}\n`);
  } finally {
    await server.dispose();
  }
  return readStream(file);
}

function readStream(file) {
  const all = fs.readFileSync(file);
  const messages = [];
  for (let pos = 0; pos < all.length; ) {
    const len = all.readUInt32BE(pos);
    messages.push(all.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return messages;
}
