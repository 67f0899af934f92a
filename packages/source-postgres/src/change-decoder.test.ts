// Messages built field by field as listed in
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
import type { ChangeEvent, RelayEvent } from '@sluice/core';
import { isRawJson, silentLogger } from '@sluice/core';
import { formatLsn, type TupleValue, UNCHANGED_TOAST } from '@sluice/pgoutput';
import { describe, expect, it } from 'vitest';
import { ChangeDecoder, type ChangeDecoderOptions } from './change-decoder.js';
import { UnexpectedMessageError } from './errors.js';
import type { SnapshotHooks, WatermarkContext } from './snapshot/contract.js';

const encoder = new TextEncoder();

class Msg {
  private readonly out: number[] = [];
  tag(c: string): this {
    this.out.push(c.charCodeAt(0));
    return this;
  }
  int8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }
  int16(v: number): this {
    this.out.push((v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  int32(v: number): this {
    this.out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  int64(v: bigint): this {
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.out.push(Number((v >> shift) & 0xffn));
    return this;
  }
  cstring(s: string): this {
    this.out.push(...encoder.encode(s), 0);
    return this;
  }
  tuple(values: TupleValue[]): this {
    this.int16(values.length);
    for (const v of values) {
      if (v === null) this.tag('n');
      else if (v === UNCHANGED_TOAST) this.tag('u');
      else if (typeof v === 'string') {
        const bytes = encoder.encode(v);
        this.tag('t').int32(bytes.length);
        this.out.push(...bytes);
      } else throw new Error('binary values are not used here');
    }
    return this;
  }
  build(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

const INT4 = 23;
const TEXT = 25;

const begin = (finalLsn: bigint, xid: number) =>
  new Msg().tag('B').int64(finalLsn).int64(0n).int32(xid).build();
const commit = (commitLsn: bigint, endLsn: bigint) =>
  new Msg().tag('C').int8(0).int64(commitLsn).int64(endLsn).int64(0n).build();

function relation(
  oid: number,
  schema: string,
  name: string,
  identity: 'd' | 'n' | 'f' | 'i',
  columns: Array<[name: string, type: number, isKey: boolean]>,
): Uint8Array {
  const m = new Msg().tag('R').int32(oid).cstring(schema).cstring(name).int8(identity.charCodeAt(0));
  m.int16(columns.length);
  for (const [col, type, isKey] of columns)
    m.int8(isKey ? 1 : 0)
      .cstring(col)
      .int32(type)
      .int32(-1);
  return m.build();
}

const insert = (oid: number, values: TupleValue[]) =>
  new Msg().tag('I').int32(oid).tag('N').tuple(values).build();
const update = (oid: number, old: ['K' | 'O', TupleValue[]] | null, values: TupleValue[]) => {
  const m = new Msg().tag('U').int32(oid);
  if (old) m.tag(old[0]).tuple(old[1]);
  return m.tag('N').tuple(values).build();
};
const del = (oid: number, kind: 'K' | 'O', values: TupleValue[]) =>
  new Msg().tag('D').int32(oid).tag(kind).tuple(values).build();
const truncate = (oids: number[]) => {
  const m = new Msg().tag('T').int32(oids.length).int8(0);
  for (const oid of oids) m.int32(oid);
  return m.build();
};
const message = (transactional: boolean, lsn: bigint, prefix: string, content: string) => {
  const bytes = encoder.encode(content);
  const m = new Msg()
    .tag('M')
    .int8(transactional ? 1 : 0)
    .int64(lsn)
    .cstring(prefix)
    .int32(bytes.length);
  for (const b of bytes) m.int8(b);
  return m.build();
};

const ORDERS = 16384;
const OTHER = 16390;

function decoder(overrides: Partial<ChangeDecoderOptions> = {}): ChangeDecoder {
  return new ChangeDecoder({
    slot: 'sluice',
    protocolVersion: 3,
    tables: [{ schema: 'public', table: 'orders', primaryKey: ['id'] }],
    snapshotHooks: () => undefined,
    logger: silentLogger,
    ...overrides,
  });
}

/** Feeds messages at consecutive fake WAL positions; returns the events and commit cursors. */
function feed(d: ChangeDecoder, messages: Uint8Array[], startLsn = 0x1000n) {
  const events: RelayEvent[] = [];
  const commits: bigint[] = [];
  messages.forEach((m, i) => {
    const cursor = d.handle(startLsn + BigInt(i) * 0x10n, m, events);
    if (cursor !== null) commits.push(cursor);
  });
  return { events, commits, changes: events as ChangeEvent[] };
}

const ordersRelation = (identity: 'd' | 'f' | 'i' = 'd') =>
  relation(ORDERS, 'public', 'orders', identity, [
    ['id', INT4, identity !== 'i'],
    ['status', TEXT, identity === 'f' || identity === 'i'],
    ['notes', TEXT, identity === 'f'],
  ]);

describe('ChangeDecoder', () => {
  it('numbers the events of a transaction and builds ids from the slot, the commit LSN and the seq', () => {
    const { changes, commits } = feed(decoder(), [
      begin(0x2000n, 700),
      ordersRelation(),
      insert(ORDERS, ['1', 'new', null]),
      update(ORDERS, null, ['1', 'paid', null]),
      commit(0x2000n, 0x2040n),
    ]);
    expect(commits).toEqual([0x2040n]);
    expect(changes.map((e) => [e.id, e.op, e.source.seq, e.source.lsn])).toEqual([
      ['sluice:0/2000:0', 'insert', 0, formatLsn(0x1020n)],
      ['sluice:0/2000:1', 'update', 1, formatLsn(0x1030n)],
    ]);
    expect(changes[0]).toMatchObject({
      key: { id: 1 },
      before: null,
      after: { id: 1, status: 'new', notes: null },
      source: { commitLsn: '0/2000', xid: 700, snapshot: null, commitTime: '2000-01-01T00:00:00.000000Z' },
    });
  });

  it('returns Commit.endLsn exactly as sent, and nothing to commit for other messages', () => {
    const d = decoder();
    const out: RelayEvent[] = [];
    expect(d.handle(1n, begin(0x5000n, 1), out)).toBeNull();
    expect(d.inTransaction).toBe(true);
    expect(d.handle(2n, commit(0x5000n, 0x5123n), out)).toBe(0x5123n);
    expect(d.inTransaction).toBe(false);
  });

  it('sends only the identity columns as before for a K tuple, and the whole old row for an O tuple', () => {
    const keyOnly = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation(),
      update(ORDERS, ['K', ['1', null, null]], ['2', 'x', null]),
      del(ORDERS, 'K', ['2', null, null]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(keyOnly.map((e) => [e.op, e.key, e.before])).toEqual([
      ['update', { id: 2 }, { id: 1 }],
      ['delete', { id: 2 }, { id: 2 }],
    ]);

    const full = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation('f'),
      update(ORDERS, ['O', ['1', 'new', 'n']], ['1', 'paid', 'n']),
      del(ORDERS, 'O', ['1', 'paid', 'n']),
      commit(0x2000n, 0x2040n),
    ]).changes;
    // Every column is flagged as key under FULL: the catalog's primary key is used instead.
    expect(full.map((e) => [e.op, e.key, e.before])).toEqual([
      ['update', { id: 1 }, { id: 1, status: 'new', notes: 'n' }],
      ['delete', { id: 1 }, { id: 1, status: 'paid', notes: 'n' }],
    ]);
  });

  it('lists unchanged TOAST columns in `unchanged` and leaves them out of after', () => {
    const [e] = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation(),
      update(ORDERS, null, ['1', 'paid', UNCHANGED_TOAST]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e).toMatchObject({ after: { id: 1, status: 'paid' }, unchanged: ['notes'] });
    expect(e?.after).not.toHaveProperty('notes');
  });

  it('fills unchanged TOAST columns from a REPLICA IDENTITY FULL old row, which carries them detoasted', () => {
    const [e] = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation('f'),
      update(ORDERS, ['O', ['1', 'new', 'long text']], ['1', 'paid', UNCHANGED_TOAST]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e).toMatchObject({ after: { id: 1, status: 'paid', notes: 'long text' }, unchanged: [] });
  });

  it('lists in `changed` the columns whose value differs from a REPLICA IDENTITY FULL old row, in column order', () => {
    const [e] = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation('f'),
      update(ORDERS, ['O', ['1', 'new', 'n']], ['1', 'paid', null]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e?.changed).toEqual(['status', 'notes']);
  });

  it('gives an update that changed nothing an empty `changed` when the old row was sent', () => {
    const [e] = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation('f'),
      update(ORDERS, ['O', ['1', 'new', null]], ['1', 'new', null]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e?.changed).toEqual([]);
  });

  it('compares a key-only old row on the key columns only', () => {
    const [e] = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation(),
      update(ORDERS, ['K', ['1', null, null]], ['2', 'x', 'y']),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e?.changed).toEqual(['id']);
  });

  it('never reports an unchanged TOAST column as changed', () => {
    const [full] = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation('f'),
      update(ORDERS, ['O', ['1', 'new', 'long text']], ['1', 'paid', UNCHANGED_TOAST]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(full?.changed).toEqual(['status']);
    const [keyOnly] = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation(),
      update(ORDERS, ['K', ['1', null, null]], ['2', 'x', UNCHANGED_TOAST]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(keyOnly).toMatchObject({ changed: ['id'], unchanged: ['notes'] });
  });

  it('leaves `changed` out (not null, not []) when Postgres sent no old row, and of every other op', () => {
    const { changes } = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation(),
      insert(ORDERS, ['1', 'new', null]),
      update(ORDERS, null, ['1', 'paid', null]),
      del(ORDERS, 'K', ['1', null, null]),
      truncate([ORDERS]),
      commit(0x2000n, 0x2040n),
    ]);
    expect(changes.map((e) => e.op)).toEqual(['insert', 'update', 'delete', 'truncate']);
    for (const e of changes) expect(e).not.toHaveProperty('changed');
  });

  it('compares json values by their text: the same jsonb is unchanged, a different spelling of json is a change', () => {
    const JSON_OID = 114;
    const JSONB = 3802;
    const [e] = feed(decoder({ tables: [{ schema: 'public', table: 'docs', primaryKey: ['id'] }] }), [
      begin(0x2000n, 1),
      relation(OTHER, 'public', 'docs', 'f', [
        ['id', INT4, true],
        ['jb', JSONB, true],
        ['j', JSON_OID, true],
      ]),
      update(OTHER, ['O', ['1', '{"a": 1}', '{"a":1}']], ['1', '{"a": 1}', '{"a": 1}']),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e?.changed).toEqual(['j']);
  });

  it('reads a domain column as the base type its Type message names, json domains verbatim', () => {
    const DOMAIN_OVER_JSONB = 16500;
    const DOMAIN_OVER_INT8 = 16501;
    const DOMAIN_OVER_INT4_ARRAY = 16502;
    const ENUM = 16503;
    const typeMsg = (oid: number, schema: string, name: string) =>
      new Msg().tag('Y').int32(oid).cstring(schema).cstring(name).build();
    const [e] = feed(decoder({ tables: [{ schema: 'public', table: 'docs', primaryKey: ['id'] }] }), [
      begin(0x2000n, 1),
      // pgoutput names a domain's base type, with pg_catalog as the empty schema.
      typeMsg(DOMAIN_OVER_JSONB, '', 'jsonb'),
      typeMsg(DOMAIN_OVER_INT8, '', 'int8'),
      typeMsg(DOMAIN_OVER_INT4_ARRAY, '', '_int4'),
      typeMsg(ENUM, 'public', 'mood'),
      relation(OTHER, 'public', 'docs', 'd', [
        ['id', INT4, true],
        ['doc', DOMAIN_OVER_JSONB, false],
        ['big', DOMAIN_OVER_INT8, false],
        ['ints', DOMAIN_OVER_INT4_ARRAY, false],
        ['mood', ENUM, false],
      ]),
      insert(OTHER, ['1', '{"n": 12345678901234567890}', '9007199254740993', '{1,2}', 'happy']),
      commit(0x2000n, 0x2040n),
    ]).changes;
    const after = e?.after ?? {};
    expect(isRawJson(after['doc']) && after['doc'].json).toBe('{"n": 12345678901234567890}');
    expect(after).toMatchObject({ id: 1, big: '9007199254740993', ints: [1, 2], mood: 'happy' });
  });

  it('keys a table without a catalog primary key by its replica identity columns', () => {
    const [e] = feed(decoder({ tables: [{ schema: 'public', table: 'orders', primaryKey: [] }] }), [
      begin(0x2000n, 1),
      ordersRelation('i'),
      del(ORDERS, 'K', [null, 'paid', null]),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e).toMatchObject({ key: { status: 'paid' }, before: { status: 'paid' } });
  });

  it('gives a table with neither primary key nor identity a null key', () => {
    const [e] = feed(decoder({ tables: [{ schema: 'public', table: 'orders', primaryKey: [] }] }), [
      begin(0x2000n, 1),
      relation(ORDERS, 'public', 'orders', 'd', [['id', INT4, false]]),
      insert(ORDERS, ['1']),
      commit(0x2000n, 0x2040n),
    ]).changes;
    expect(e?.key).toBeNull();
  });

  it('emits one truncate event per captured relation and ignores relations that are not captured', () => {
    const { changes } = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation(),
      relation(OTHER, 'public', 'other', 'd', [['id', INT4, true]]),
      insert(OTHER, ['9']),
      truncate([OTHER, ORDERS]),
      commit(0x2000n, 0x2040n),
    ]);
    // The insert into `other` takes seq 0 and its truncate seq 1, though neither is published.
    expect(changes.map((e) => [e.table, e.op, e.key, e.before, e.after, e.source.seq])).toEqual([
      ['orders', 'truncate', null, null, null, 2],
    ]);
  });

  it('gives a change the same id whatever the relay captures (a replay under other settings collides with nothing)', () => {
    const messages = () => [
      begin(0x2000n, 1),
      ordersRelation(),
      relation(OTHER, 'public', 'other', 'd', [['id', INT4, true]]),
      insert(OTHER, ['9']),
      insert(ORDERS, ['1', 'a', null]),
      insert(OTHER, ['10']),
      commit(0x2000n, 0x2040n),
    ];
    const ordersOnly = feed(decoder(), messages()).changes;
    const both = feed(
      decoder({
        tables: [
          { schema: 'public', table: 'orders', primaryKey: ['id'] },
          { schema: 'public', table: 'other', primaryKey: ['id'] },
        ],
      }),
      messages(),
    ).changes;
    expect(ordersOnly.map((e) => e.id)).toEqual(['sluice:0/2000:1']);
    expect(both.map((e) => [e.table, e.id])).toEqual([
      ['other', 'sluice:0/2000:0'],
      ['orders', 'sluice:0/2000:1'],
      ['other', 'sluice:0/2000:2'],
    ]);
  });

  it('uses a new Relation message for the rows after it (a column added mid-stream)', () => {
    const { changes } = feed(decoder(), [
      begin(0x2000n, 1),
      ordersRelation(),
      insert(ORDERS, ['1', 'a', null]),
      relation(ORDERS, 'public', 'orders', 'd', [
        ['id', INT4, true],
        ['status', TEXT, false],
        ['notes', TEXT, false],
        ['qty', INT4, false],
      ]),
      insert(ORDERS, ['2', 'b', null, '3']),
      commit(0x2000n, 0x2040n),
    ]);
    expect(changes.map((e) => e.after)).toEqual([
      { id: 1, status: 'a', notes: null },
      { id: 2, status: 'b', notes: null, qty: 3 },
    ]);
  });

  it('calls observeChange for every change before handing it over, and turns watermark rows into read events under their own ids', () => {
    const seen: string[] = [];
    const contexts: WatermarkContext[] = [];
    const hooks: SnapshotHooks = {
      observeChange: (e) => seen.push(`${e.op}:${e.id}`),
      onWatermark: (content, context) => {
        contexts.push(context);
        return content.includes('high')
          ? {
              snapshotId: 'snap-1',
              rows: [
                {
                  id: 'sluice:read:snap-1:abc',
                  schema: 'public',
                  table: 'orders',
                  key: { id: 5 },
                  after: { id: 5, status: 'old' },
                },
              ],
            }
          : { snapshotId: 'snap-1', rows: [] };
      },
    };
    const { changes } = feed(decoder({ snapshotHooks: () => hooks }), [
      begin(0x3000n, 42),
      ordersRelation(),
      insert(ORDERS, ['1', 'new', null]),
      message(true, 0x2ff0n, 'sluice.watermark', '{"t":"high","id":"c1"}'),
      commit(0x3000n, 0x3040n),
    ]);
    expect(seen).toEqual(['insert:sluice:0/3000:0']);
    expect(contexts).toEqual([{ commitLsn: 0x3000n, commitTime: '2000-01-01T00:00:00.000000Z', xid: 42 }]);
    expect(changes[1]).toEqual({
      kind: 'change',
      id: 'sluice:read:snap-1:abc',
      op: 'read',
      schema: 'public',
      table: 'orders',
      key: { id: 5 },
      before: null,
      after: { id: 5, status: 'old' },
      unchanged: [],
      source: {
        lsn: '0/3000',
        commitLsn: '0/3000',
        xid: 42,
        commitTime: '2000-01-01T00:00:00.000000Z',
        seq: 1,
        snapshot: 'snap-1',
      },
    });
  });

  it('drops watermarks without snapshot hooks, heartbeats always, and other messages without outbox hooks', () => {
    const { events } = feed(decoder(), [
      begin(0x3000n, 1),
      message(true, 0x2ff0n, 'sluice.watermark', '{}'),
      message(true, 0x2ff8n, 'sluice.heartbeat', ''),
      message(true, 0x2ffcn, 'app.something', 'x'),
      commit(0x3000n, 0x3040n),
      message(false, 0x3050n, 'sluice.heartbeat', ''),
    ]);
    expect(events).toEqual([]);
  });

  it('hands logical messages and inserts to the outbox hooks, which allocate seqs like row changes', () => {
    const d = decoder({
      outboxHooks: {
        onLogicalMessage: (msg, ctx) => {
          const source = ctx.nextSource();
          return [
            {
              kind: 'outbox',
              id: `msg-${new TextDecoder().decode(msg.content)}`,
              aggregateType: 'order',
              aggregateId: '1',
              type: msg.prefix,
              payload: '{}',
              headers: {},
              source,
            },
          ];
        },
        onInsert: (rel, row, ctx) =>
          rel.table === 'other'
            ? [
                {
                  kind: 'outbox',
                  id: `row-${String(row['id'])}`,
                  aggregateType: 'order',
                  aggregateId: '1',
                  type: 'created',
                  payload: '{}',
                  headers: {},
                  source: ctx.nextSource(),
                },
              ]
            : undefined,
      },
    });
    const { events } = feed(d, [
      begin(0x3000n, 1),
      ordersRelation(),
      relation(OTHER, 'public', 'other', 'd', [['id', INT4, true]]),
      message(true, 0x2ff0n, 'app.event', 'a'),
      insert(OTHER, ['9']),
      insert(ORDERS, ['1', 'x', null]),
      commit(0x3000n, 0x3040n),
    ]);
    expect(events.map((e) => [e.kind, e.id, e.source.seq])).toEqual([
      ['outbox', 'msg-a', 0],
      ['outbox', 'row-9', 1],
      ['change', 'sluice:0/3000:2', 2],
    ]);
  });

  it('gives onInsert the raw column texts, so a jsonb payload with a big integer stays verbatim', () => {
    const JSONB = 3802;
    const raws: Array<[string | null | undefined, string | null | undefined, string | null | undefined]> = [];
    let parsed: unknown;
    const d = decoder({
      outboxHooks: {
        tables: [{ schema: 'sluice', table: 'outbox' }],
        onInsert: (_rel, row, _ctx, raw) => {
          parsed = row['payload'];
          raws.push([raw.text('payload'), raw.text('headers'), raw.text('no_such_column')]);
          return [];
        },
      },
    });
    feed(d, [
      begin(0x3000n, 1),
      relation(OTHER, 'sluice', 'outbox', 'd', [
        ['id', TEXT, true],
        ['payload', JSONB, false],
        ['headers', JSONB, false],
      ]),
      insert(OTHER, ['e-1', '{"amount": 12345678901234567890}', null]),
      commit(0x3000n, 0x3040n),
    ]);
    expect(raws).toEqual([['{"amount": 12345678901234567890}', null, undefined]]);
    // The row carries the json text too, verbatim (never parsed and re-serialised).
    expect(isRawJson(parsed) && parsed.json).toBe('{"amount": 12345678901234567890}');
  });

  it('tells onIgnoredChange about updates, deletes and truncates of an outbox-only table, and publishes none', () => {
    const ignored: Array<[string, string, string | undefined]> = [];
    const d = decoder({
      outboxHooks: {
        tables: [{ schema: 'sluice', table: 'outbox' }],
        onIgnoredChange: (rel, op, ctx) =>
          ignored.push([`${rel.schema}.${rel.table}`, op, ctx.transaction?.commitLsn.toString(16)]),
      },
    });
    const { events } = feed(d, [
      begin(0x3000n, 1),
      ordersRelation(),
      relation(OTHER, 'sluice', 'outbox', 'd', [['id', TEXT, true]]),
      update(OTHER, null, ['e-1']),
      del(OTHER, 'K', ['e-1']),
      truncate([OTHER, ORDERS]),
      commit(0x3000n, 0x3040n),
    ]);
    expect(ignored).toEqual([
      ['sluice.outbox', 'update', '3000'],
      ['sluice.outbox', 'delete', '3000'],
      ['sluice.outbox', 'truncate', '3000'],
    ]);
    expect(events.map((e) => (e.kind === 'change' ? `${e.table} ${e.op}` : e.kind))).toEqual([
      'orders truncate',
    ]);
  });

  it('rejects a streamed-transaction message it never asked for', () => {
    const streamStart = new Msg().tag('S').int32(7).int8(1).build();
    expect(() => feed(decoder(), [streamStart])).toThrow(UnexpectedMessageError);
  });

  it('rejects a row change outside a transaction', () => {
    expect(() => feed(decoder(), [ordersRelation(), insert(ORDERS, ['1', 'x', null])])).toThrow(
      /outside a transaction/,
    );
  });
});
