import type { JsonValue, Row } from '@sluice/core';
import { valueParserFor } from '@sluice/pgoutput';
import type { CustomTypesConfig, Pool } from 'pg';
import { qualifiedName, quoteIdent, type TableShape } from './catalog.js';
import type { SnapshotRead } from './contract.js';
import { inTransaction } from './pool-client.js';

/**
 * The key of a chunk's last row as Postgres printed it, column → text. Saved as `last_key` and cast
 * back with the column's type for the next chunk, so it round-trips exactly whatever the type.
 */
export type KeyText = Record<string, string>;

export interface ChunkRows {
  /** Rows in key order, values converted like streamed values. */
  reads: SnapshotRead[];
  /** Key of the last row read; undefined for an empty chunk. */
  lastKey: KeyText | undefined;
  /**
   * 32-bit xids in progress for the read's snapshot. A change the stream decodes before the low
   * watermark from one of these is newer than the read, though it precedes the watermark in the WAL.
   */
  invisibleXids: Set<number>;
}

/** Every value arrives as the type's text output, which is exactly what pgoutput sends in text mode. */
const RAW_TEXT = { getTypeParser: () => (text: string) => text } as unknown as CustomTypesConfig;

/**
 * The chunk's transaction: a snapshot fixed by its first statement, and the output settings the
 * value parsers expect (the server defaults the walsender prints with), whatever the pool's
 * connections were configured with. `::text` casts would not do: `true::text` is `true`, pgoutput
 * prints `t`.
 */
const BEGIN_SQL = 'begin isolation level repeatable read read only';
const SNAPSHOT_SQL = `select set_config('DateStyle', 'ISO, MDY', true), set_config('IntervalStyle', 'postgres', true),
  set_config('bytea_output', 'hex', true), set_config('extra_float_digits', '1', true),
  pg_current_snapshot()::text as snapshot`;

export class ChunkReader {
  readonly shape: TableShape;
  readonly #firstSql: string;
  readonly #nextSql: string;
  readonly #parsers: ((text: string) => JsonValue)[];
  readonly #keyIndexes: number[];

  /** `predicate`: a backfill's `--where`, checked with checkPredicate() before it gets here. */
  constructor(shape: TableShape, predicate: string | null = null) {
    if (shape.keyColumns.length === 0) {
      throw new Error(`ChunkReader: ${shape.schema}.${shape.table} has no primary key`);
    }
    this.shape = shape;
    const byName = new Map(shape.columns.map((c, i) => [c.name, i]));
    this.#keyIndexes = shape.keyColumns.map((k) => {
      const index = byName.get(k);
      if (index === undefined) throw new Error(`ChunkReader: key column ${k} is not among the columns`);
      return index;
    });
    this.#parsers = shape.columns.map((c) => valueParserFor(c.typeOid));
    this.#firstSql = chunkSql(shape, false, predicate);
    this.#nextSql = chunkSql(shape, true, predicate);
  }

  /** Reads up to `limit` rows after `after` (from the start when undefined) in one repeatable-read transaction. */
  async read(pool: Pool, after: KeyText | undefined, limit: number): Promise<ChunkRows> {
    const shape = this.shape;
    const values: unknown[] = after === undefined ? [] : shape.keyColumns.map((k) => after[k]);
    values.push(limit);
    return inTransaction(pool, BEGIN_SQL, async (client) => {
      const snapshot = await client.query<{ snapshot: string }>(SNAPSHOT_SQL);
      const result = await client.query<unknown[]>({
        text: after === undefined ? this.#firstSql : this.#nextSql,
        values,
        rowMode: 'array',
        types: RAW_TEXT,
      });
      return {
        reads: result.rows.map((raw) => this.#toRead(raw as (string | null)[])),
        lastKey: this.#lastKey(result.rows.at(-1) as (string | null)[] | undefined),
        invisibleXids: inProgressXids(snapshot.rows[0]?.snapshot ?? ''),
      };
    });
  }

  #toRead(raw: (string | null)[]): SnapshotRead {
    const { columns } = this.shape;
    const after: Row = {};
    for (let i = 0; i < columns.length; i++) {
      const text = raw[i];
      setColumn(after, columns[i]!.name, text == null ? null : this.#parsers[i]!(text));
    }
    const key: Row = {};
    for (const index of this.#keyIndexes) {
      const name = columns[index]!.name;
      setColumn(key, name, after[name] ?? null);
    }
    return { schema: this.shape.schema, table: this.shape.table, key, after };
  }

  #lastKey(raw: (string | null)[] | undefined): KeyText | undefined {
    if (raw === undefined) return undefined;
    const key: KeyText = {};
    for (const index of this.#keyIndexes) {
      // Primary-key columns are NOT NULL.
      setColumn(key, this.shape.columns[index]!.name, raw[index] ?? '');
    }
    return key;
  }
}

/**
 * `select <columns> from t [where (k1, k2) > ($1::type, $2::type)] [and (<predicate>)] order by k1, k2 limit $n`.
 * Always run with parameters (the limit at least), so Postgres takes it as one statement only.
 */
export function chunkSql(shape: TableShape, afterKey: boolean, predicate: string | null = null): string {
  const typeOf = new Map(shape.columns.map((c) => [c.name, c.typeName]));
  const keys = shape.keyColumns.map(quoteIdent).join(', ');
  const params = shape.keyColumns.map((k, i) => `$${i + 1}::${typeOf.get(k)}`).join(', ');
  const conditions = afterKey ? [`(${keys}) > (${params})`] : [];
  if (predicate !== null) conditions.push(`(${predicate})`);
  const where = conditions.length > 0 ? ` where ${conditions.join(' and ')}` : '';
  const limit = `$${afterKey ? shape.keyColumns.length + 1 : 1}`;
  const columns = shape.columns.map((c) => quoteIdent(c.name)).join(', ');
  return `select ${columns} from ${qualifiedName(shape)}${where} order by ${keys} limit ${limit}`;
}

/** `pg_current_snapshot()` text `xmin:xmax:xip,…` → the in-progress xids, as the 32-bit xids pgoutput reports. */
export function inProgressXids(snapshot: string): Set<number> {
  const xip = snapshot.split(':')[2] ?? '';
  const xids = new Set<number>();
  for (const x of xip.split(',')) if (x !== '') xids.add(Number(BigInt(x) & 0xffff_ffffn));
  return xids;
}

/** A column named `__proto__` must become a property, not the row's prototype. */
function setColumn<T>(row: Record<string, T>, name: string, value: T): void {
  if (name === '__proto__') {
    Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
  } else {
    row[name] = value;
  }
}
