// Property: every value, of every type, arrives in the published body as the documented rule says,
// which the test asks Postgres itself for (to_jsonb where the rule is what to_jsonb gives, the text
// form elsewhere, see test/support/pg-values.ts). Seeded random rows are written through a private
// Postgres (server time zone +05:45, so timestamptz are converted), decoded from the slot's real
// pgoutput bytes by the relay's ChangeDecoder and encoded by encodeEnvelope; snapshot reads go
// through the snapshot's ChunkReader. Inserts, updates with REPLICA IDENTITY FULL old rows, reads.
//
// SLUICE_VALUES_SEEDS=a,b,c runs other seeds (a failure prints its seed).
import { type ChangeEvent, encodeEnvelope, type RelayEvent, silentLogger } from '@sluice/core';
import { ChangeDecoder } from '@sluice/source-postgres';
import { type PostgresServer, startPostgres } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTable } from '../packages/source-postgres/src/snapshot/catalog.js';
import { ChunkReader } from '../packages/source-postgres/src/snapshot/chunk-reader.js';
import { member, parseExact } from './support/exact-json.js';
import {
  COLUMNS,
  compareRow,
  type Expected,
  exactForm,
  expectedRows,
  generateChanges,
  generateRow,
  insertSql,
  type RowInput,
  random,
  TYPE_SETUP,
  tableSql,
  updateSql,
} from './support/pg-values.js';

const SEEDS = (process.env['SLUICE_VALUES_SEEDS'] ?? '1,2,3').split(',').map(Number);
const ROWS = 12;

let server: PostgresServer;
let pool: pg.Pool;

beforeAll(async () => {
  server = await startPostgres({ settings: { TimeZone: 'Asia/Kathmandu' } });
  pool = new pg.Pool({ connectionString: server.url(), max: 3 });
  for (const sql of TYPE_SETUP) await pool.query(sql);
  await pool.query('CREATE PUBLICATION values_pub FOR ALL TABLES');
});
afterAll(async () => {
  pool?.on('error', () => {});
  await pool?.end();
  await server?.dispose();
});

async function expected(table: string): Promise<Expected> {
  const client = await pool.connect();
  try {
    return await expectedRows(client, table);
  } finally {
    client.release();
  }
}

/** Every change of the slot so far, through the relay's decoder, with the body it publishes. */
async function published(slot: string, table: string): Promise<{ event: ChangeEvent; body: string }[]> {
  const { rows } = await pool.query<{ lsn: string; data: Buffer }>(
    `SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
       'proto_version', '3', 'publication_names', 'values_pub')`,
    [slot],
  );
  const decoder = new ChangeDecoder({
    slot,
    protocolVersion: 3,
    tables: [{ schema: 'public', table, primaryKey: ['id'] }],
    snapshotHooks: () => undefined,
    logger: silentLogger,
  });
  const out: RelayEvent[] = [];
  for (const { lsn, data } of rows) {
    const [hi, lo] = lsn.split('/');
    decoder.handle((BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`), data, out);
  }
  return out.map((event) => ({ event: event as ChangeEvent, body: encodeEnvelope(event) }));
}

function check(
  what: string,
  body: string,
  field: 'before' | 'after',
  want: Map<string, ReturnType<typeof parseExact>>,
) {
  const node = member(parseExact(body), field);
  if (node === undefined) throw new Error(`${what}: no ${field} in ${body}`);
  const problems = compareRow(body, node, want);
  expect(problems, `${what} ${field}`).toEqual([]);
}

describe.each(SEEDS)('seed %i: generated values of every type, written through Postgres', (seed) => {
  const table = `vals_${seed}`;
  const slot = `vals_${seed}`;
  const inputs = new Map<number, RowInput>();
  const changes = new Map<number, RowInput>();
  let before: Expected;
  let after: Expected;
  let events: { event: ChangeEvent; body: string }[];

  beforeAll(async () => {
    await pool.query(tableSql(table));
    await pool.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    const r = random(seed);
    for (let id = 1; id <= ROWS; id++) {
      inputs.set(id, generateRow(r));
      await pool.query(insertSql(table, id, inputs.get(id)!));
    }
    before = await expected(table);
    for (let id = 1; id <= ROWS; id++) {
      changes.set(id, generateChanges(r));
      await pool.query(updateSql(table, id, changes.get(id)!));
    }
    after = await expected(table);
    events = await published(slot, table);
    await pool.query('SELECT pg_drop_replication_slot($1)', [slot]);
  });

  it('inserts publish every value as Postgres holds it', () => {
    const inserts = events.filter((e) => e.event.op === 'insert');
    expect(inserts).toHaveLength(ROWS);
    for (const { event, body } of inserts) {
      const id = Number((event.key as { id: number }).id);
      check(`seed ${seed} insert ${id}`, body, 'after', before.get(id)!);
    }
  });

  it('updates publish the old row (REPLICA IDENTITY FULL) and the new row as Postgres holds them', () => {
    const updates = events.filter((e) => e.event.op === 'update');
    expect(updates).toHaveLength(ROWS);
    for (const { event, body } of updates) {
      const id = Number((event.key as { id: number }).id);
      check(`seed ${seed} update ${id}`, body, 'before', before.get(id)!);
      check(`seed ${seed} update ${id}`, body, 'after', after.get(id)!);
    }
  });

  it('updates list in `changed` exactly the columns whose value differs (json by its text), all among those the UPDATE set', () => {
    for (const { event } of events.filter((e) => e.event.op === 'update')) {
      const id = Number((event.key as { id: number }).id);
      const old = before.get(id)!;
      const now = after.get(id)!;
      const differ = COLUMNS.map((c) => c.name).filter(
        (n) => exactForm(old.get(n)!) !== exactForm(now.get(n)!),
      );
      expect(event.changed, `seed ${seed} update ${id}`).toEqual(differ);
      const set = Object.keys(changes.get(id)!);
      expect(event.changed!.filter((n) => !set.includes(n))).toEqual([]);
    }
  });

  it('snapshot reads publish every value exactly as the stream does', async () => {
    const shape = await describeTable(pool, { schema: 'public', table });
    const { reads } = await new ChunkReader(shape!).read(pool, undefined, ROWS + 1);
    expect(reads).toHaveLength(ROWS);
    for (const read of reads) {
      const event: ChangeEvent = {
        kind: 'change',
        id: 'x',
        op: 'read',
        schema: read.schema,
        table: read.table,
        key: read.key,
        before: null,
        after: read.after,
        unchanged: [],
        source: { lsn: '0/0', commitLsn: '0/0', xid: null, commitTime: '', seq: 0, snapshot: 's' },
      };
      const id = Number((read.key as { id: number }).id);
      check(`seed ${seed} read ${id}`, encodeEnvelope(event), 'after', after.get(id)!);
    }
  });
});
