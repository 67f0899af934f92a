import { PermanentError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLL_COLUMNS, type PollColumns, resolvePollColumns } from './columns.js';
import { OutboxPollTableError } from './errors.js';
import {
  type CatalogColumn,
  checkPollTable,
  type ExplicitColumns,
  type PollMode,
  type TableCatalog,
} from './table-check.js';

const SLUICE = { schema: 'sluice', name: 'outbox' };
const PUBLIC = { schema: 'public', name: 'outbox' };

function column(
  attnum: number,
  name: string,
  type: string,
  extra: Partial<CatalogColumn> = {},
): CatalogColumn {
  return { attnum, name, type, identity: '', default: null, ...extra };
}

/** sluice.outbox as migrations 0000 and 0001 create it. */
const sluiceColumns: CatalogColumn[] = [
  column(1, 'id', 'uuid'),
  column(2, 'aggregatetype', 'character varying(255)'),
  column(3, 'aggregateid', 'character varying(255)'),
  column(4, 'type', 'character varying(255)'),
  column(5, 'payload', 'jsonb'),
  column(6, 'headers', 'jsonb'),
  column(7, 'created_at', 'timestamp with time zone', { default: 'now()' }),
  column(8, 'txid', 'xid8', { default: 'pg_current_xact_id()' }),
  column(9, 'position', 'bigint', { identity: 'a' }),
  column(10, 'published_at', 'timestamp with time zone'),
];

/** Debezium's outbox table: no headers, no poll columns, no creation time. */
const debeziumColumns = sluiceColumns.slice(0, 5);

function catalog(columns: CatalogColumn[], patch: Partial<TableCatalog> = {}): TableCatalog {
  return {
    columns,
    indexes: [[1], [8, 9]],
    privileges: { select: true, delete: true, update: true },
    role: 'relay',
    ...patch,
  };
}

function check(
  cat: TableCatalog | null,
  {
    table = SLUICE,
    columns = DEFAULT_POLL_COLUMNS as PollColumns,
    mode = 'delete' as PollMode,
    explicit = {} as ExplicitColumns,
  } = {},
) {
  return checkPollTable(table, columns, mode, explicit, cat);
}

function failure(fn: () => unknown): OutboxPollTableError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OutboxPollTableError) return err;
    throw err;
  }
  throw new Error('expected OutboxPollTableError, nothing was thrown');
}

describe('checkPollTable', () => {
  it("accepts Sluice's own table as migrated, with nothing to warn about", () => {
    expect(check(catalog(sluiceColumns))).toEqual({
      name: SLUICE,
      sql: '"sluice"."outbox"',
      columns: DEFAULT_POLL_COLUMNS,
      createdAtType: 'timestamptz',
      mode: 'delete',
      payloadIsJson: true,
      warnings: [],
    });
    expect(check(catalog(sluiceColumns), { mode: 'mark' }).mode).toBe('mark');
  });

  it('says how to create a missing table: migrate for sluice.outbox, check the name otherwise', () => {
    const own = failure(() => check(null));
    expect(own).toBeInstanceOf(PermanentError);
    expect(own.message).toMatch(
      /^outbox table "sluice"\."outbox" does not exist\n {2}fix: run `sluice migrate`/,
    );
    expect(failure(() => check(null, { table: PUBLIC })).hint).toMatch(/^check the table name/);
  });

  it('gives the exact statements that add the poll columns to a Debezium table', () => {
    const err = failure(() =>
      check(catalog(debeziumColumns), { table: PUBLIC, columns: resolvePollColumns({ headers: null }) }),
    );
    expect(err.message).toMatch(
      /^outbox table "public"\."outbox" cannot be polled: it lacks "txid", "position"\n/,
    );
    expect(err.statements).toEqual([
      'ALTER TABLE "public"."outbox" ADD COLUMN "txid" xid8 NOT NULL DEFAULT pg_current_xact_id();',
      'ALTER TABLE "public"."outbox" ADD COLUMN "position" bigint GENERATED ALWAYS AS IDENTITY;',
      'CREATE INDEX ON "public"."outbox" ("txid", "position");',
    ]);
    expect(err.hint).toContain(`run as the table's owner:\n    ${err.statements.join('\n    ')}`);
    expect(err.table).toBe('"public"."outbox"');
  });

  it('adds published_at and a partial index in mark mode, under the configured names', () => {
    const columns = resolvePollColumns({
      headers: null,
      txid: 'Xid',
      position: 'seq',
      publishedAt: 'sent_at',
    });
    const err = failure(() => check(catalog(debeziumColumns), { table: PUBLIC, columns, mode: 'mark' }));
    expect(err.statements).toEqual([
      'ALTER TABLE "public"."outbox" ADD COLUMN "Xid" xid8 NOT NULL DEFAULT pg_current_xact_id();',
      'ALTER TABLE "public"."outbox" ADD COLUMN "seq" bigint GENERATED ALWAYS AS IDENTITY;',
      'ALTER TABLE "public"."outbox" ADD COLUMN "sent_at" timestamptz;',
      'CREATE INDEX ON "public"."outbox" ("Xid", "seq") WHERE "sent_at" IS NULL;',
    ]);
  });

  it('refuses a txid that is not the inserting transaction: wrong type, or no pg_current_xact_id() default', () => {
    const wrongType = sluiceColumns.map((c) => (c.name === 'txid' ? { ...c, type: 'bigint' } : c));
    expect(failure(() => check(catalog(wrongType))).message).toContain(
      'column "txid" is bigint, poll mode needs xid8',
    );
    const noDefault = sluiceColumns.map((c) => (c.name === 'txid' ? { ...c, default: null } : c));
    expect(failure(() => check(catalog(noDefault))).statements).toEqual([
      'ALTER TABLE "sluice"."outbox" ALTER COLUMN "txid" SET DEFAULT pg_current_xact_id();',
    ]);
  });

  it('refuses a position nothing fills, and accepts a bigserial', () => {
    const manual = sluiceColumns.map((c) => (c.name === 'position' ? { ...c, identity: '' } : c));
    const err = failure(() => check(catalog(manual)));
    expect(err.message).toContain('column "position" must be filled automatically');
    expect(err.statements).toEqual([
      'ALTER TABLE "sluice"."outbox" ALTER COLUMN "position" SET NOT NULL;',
      'ALTER TABLE "sluice"."outbox" ALTER COLUMN "position" ADD GENERATED ALWAYS AS IDENTITY;',
    ]);
    const serial = sluiceColumns.map((c) =>
      c.name === 'position'
        ? { ...c, identity: '', default: "nextval('sluice.outbox_position_seq'::regclass)" }
        : c,
    );
    expect(check(catalog(serial)).warnings).toEqual([]);
    const text = sluiceColumns.map((c) => (c.name === 'position' ? { ...c, type: 'text' } : c));
    expect(failure(() => check(catalog(text))).message).toContain('column "position" is text');
  });

  it('names missing event columns and the mapping setting instead', () => {
    const noType = sluiceColumns.filter((c) => c.name !== 'type' && c.name !== 'payload');
    const err = failure(() => check(catalog(noType)));
    expect(err.message).toBe(
      'outbox table "sluice"."outbox" has no column "type" (type), "payload" (payload)\n  fix: name the table\'s columns in the outbox column mapping (SLUICE_OUTBOX_COLUMNS, e.g. type=<column>,payload=<column>)',
    );
  });

  it('reads no headers from a table without a headers column unless the mapping names one', () => {
    const noHeaders = sluiceColumns.filter((c) => c.name !== 'headers');
    expect(check(catalog(noHeaders)).columns.headers).toBeNull();
    expect(check(catalog(sluiceColumns)).columns.headers).toBe('headers');
    const named = resolvePollColumns({ headers: 'meta' });
    const err = failure(() => check(catalog(noHeaders), { columns: named, explicit: { headers: true } }));
    expect(err.message).toContain('has no column "meta" (headers)');
    expect(err.message).toContain('`headers=` (empty) for a table without headers');
  });

  it('falls back to the read time without created_at, unless the column was named explicitly', () => {
    const withoutCreated = sluiceColumns.filter((c) => c.name !== 'created_at');
    const table = check(catalog(withoutCreated));
    expect(table.columns.createdAt).toBeNull();
    expect(table.createdAtType).toBeNull();
    const err = failure(() =>
      check(catalog(withoutCreated), {
        columns: resolvePollColumns({ createdAt: 'created_at' }),
        explicit: { createdAt: true },
      }),
    );
    expect(err.message).toContain('column "created_at" (columns.createdAt) does not exist');
    const textTime = sluiceColumns.map((c) => (c.name === 'created_at' ? { ...c, type: 'text' } : c));
    expect(failure(() => check(catalog(textTime))).message).toContain('is text, expected timestamptz');
  });

  it('warns, with the statement, when no index leads with (txid, position)', () => {
    const table = check(catalog(sluiceColumns, { indexes: [[1], [9, 8]] }), { mode: 'mark' });
    expect(table.warnings).toEqual([
      'no index on "sluice"."outbox" ("txid", "position"): every poll scans the table; CREATE INDEX ON "sluice"."outbox" ("txid", "position") WHERE "published_at" IS NULL;',
    ]);
  });

  it('names the GRANT a role without the privileges poll mode needs must be given', () => {
    const readOnly = catalog(sluiceColumns, { privileges: { select: true, delete: false, update: true } });
    const err = failure(() => check(readOnly));
    expect(err.message).toMatch(/^role "relay" may not DELETE outbox table "sluice"\."outbox"/);
    expect(err.statements).toEqual(['GRANT DELETE ON "sluice"."outbox" TO "relay";']);
    expect(check(readOnly, { mode: 'mark' }).mode).toBe('mark');
    const none = catalog(sluiceColumns, { privileges: { select: false, delete: true, update: false } });
    expect(failure(() => check(none, { mode: 'mark' })).statements).toEqual([
      'GRANT SELECT, UPDATE ON "sluice"."outbox" TO "relay";',
    ]);
  });
});
