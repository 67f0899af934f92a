import { type ChangeEvent, encodeEnvelope, type OutboxEvent, orderingKey } from '@sluice/core';
import { DEFAULT_OUTBOX_COLUMNS } from '@sluice/outbox';
import { Decimal128, Long, ObjectId, Timestamp, UUID } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { type ChangeStreamEvent, type MappingContext, mapChangeEvent } from './change-event.js';
import { changeEventId } from './resume-token.js';
import { HIGH_WATER_MARK, MANUAL_INSERT_TOKEN, V1_TXN_TOKEN } from './tokens.test-support.js';

// Change event documents shaped as the MongoDB manual shows them (Reference → Change Events:
// insert, update, replace, delete, drop, rename, dropDatabase, invalidate), with the values the
// driver deserialises them to (ObjectId, Timestamp, Long, Date…). Tokens other than the manual's are
// built with the same KeyString layout (resume-token.test.ts).

const ctx: MappingContext = { database: 'engineering', outbox: null };
const id = new ObjectId('635019a078be67426d7cf4d2');
const clusterTime = new Timestamp({ t: 0x635019a0, i: 1 });
const wallTime = new Date('2022-10-19T15:37:04.123Z');
const collectionUUID = new UUID('ab1154ac-acd8-49a4-8c61-756d70d3b21f');
const token = (n: number) =>
  `82635019A0000000${n.toString(16).padStart(2, '0').toUpperCase()}2B042C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F04`;

function change(doc: ChangeStreamEvent, context: MappingContext = ctx): ChangeEvent {
  const mapped = mapChangeEvent(doc, context);
  if (mapped.event?.kind !== 'change') throw new Error('expected a change event');
  return mapped.event;
}

describe('mapChangeEvent', () => {
  it('maps an insert: key from documentKey, after from fullDocument, source from the token', () => {
    const doc = {
      _id: { _data: MANUAL_INSERT_TOKEN },
      operationType: 'insert',
      clusterTime,
      wallTime,
      collectionUUID,
      fullDocument: { _id: id, firstName: 'Alice', lastName: 'Smith', age: Long.fromNumber(33) },
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { _id: id },
    };
    const mapped = mapChangeEvent(doc, ctx);
    expect(mapped).toMatchObject({ token: MANUAL_INSERT_TOKEN, operationType: 'insert', invalidate: false });
    expect(mapped.event).toEqual({
      kind: 'change',
      id: changeEventId(MANUAL_INSERT_TOKEN),
      op: 'insert',
      schema: 'engineering',
      table: 'users',
      key: { _id: { $oid: '635019a078be67426d7cf4d2' } },
      before: null,
      after: {
        _id: { $oid: '635019a078be67426d7cf4d2' },
        firstName: 'Alice',
        lastName: 'Smith',
        age: { $numberLong: '33' },
      },
      unchanged: [],
      source: {
        lsn: MANUAL_INSERT_TOKEN,
        commitLsn: `${0x635019a0}.1`,
        xid: null,
        commitTime: '2022-10-19T15:37:04.123Z',
        seq: 0,
        snapshot: null,
      },
    });
  });

  it('maps an update with its updateDescription, the looked-up document and the pre-image', () => {
    const doc = {
      _id: { _data: token(2) },
      operationType: 'update',
      clusterTime: new Timestamp({ t: 0x635019a0, i: 2 }),
      wallTime,
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { _id: id },
      updateDescription: {
        updatedFields: { email: 'alice@10gen.com', 'scores.0': Decimal128.fromString('9.50') },
        removedFields: ['phoneNumber'],
        truncatedArrays: [{ field: 'vacation_time', newSize: 36 }],
        disambiguatedPaths: { 'scores.0': ['scores', 0] },
      },
      fullDocument: {
        _id: id,
        name: 'Alice',
        email: 'alice@10gen.com',
        scores: [Decimal128.fromString('9.50')],
      },
      fullDocumentBeforeChange: { _id: id, name: 'Alice', phoneNumber: '555-0100', scores: [] },
    };
    const event = change(doc);
    expect(event.op).toBe('update');
    expect(event.updateDescription).toEqual({
      updatedFields: { email: 'alice@10gen.com', 'scores.0': { $numberDecimal: '9.50' } },
      removedFields: ['phoneNumber'],
      truncatedArrays: [{ field: 'vacation_time', newSize: 36 }],
      disambiguatedPaths: { 'scores.0': ['scores', 0] },
    });
    expect(event.before).toEqual({
      _id: { $oid: '635019a078be67426d7cf4d2' },
      name: 'Alice',
      phoneNumber: '555-0100',
      scores: [],
    });
    expect(event.after).toMatchObject({ email: 'alice@10gen.com', scores: [{ $numberDecimal: '9.50' }] });
    // The body subscribers receive: updateDescription after `after`, no lossy number anywhere.
    expect(encodeEnvelope(event)).toBe(
      '{"op":"update","schema":"engineering","table":"users","key":{"_id":{"$oid":"635019a078be67426d7cf4d2"}},' +
        '"before":{"_id":{"$oid":"635019a078be67426d7cf4d2"},"name":"Alice","phoneNumber":"555-0100","scores":[]},' +
        '"after":{"_id":{"$oid":"635019a078be67426d7cf4d2"},"name":"Alice","email":"alice@10gen.com","scores":[{"$numberDecimal":"9.50"}]},' +
        '"updateDescription":{"updatedFields":{"email":"alice@10gen.com","scores.0":{"$numberDecimal":"9.50"}},' +
        '"removedFields":["phoneNumber"],"truncatedArrays":[{"field":"vacation_time","newSize":36}],' +
        '"disambiguatedPaths":{"scores.0":["scores",0]}},"unchanged":[],' +
        `"source":{"lsn":"${token(2)}","commitLsn":"${0x635019a0}.2","xid":null,"commitTime":"2022-10-19T15:37:04.123Z","seq":0,"snapshot":null}}`,
    );
  });

  it('maps an update whose document was deleted before the lookup: after is null, no pre-images: before is null', () => {
    const event = change({
      _id: { _data: token(3) },
      operationType: 'update',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { _id: id },
      updateDescription: { updatedFields: { n: 1 }, removedFields: [], truncatedArrays: [] },
      fullDocument: null,
    });
    expect(event).toMatchObject({ op: 'update', before: null, after: null });
    expect(event.updateDescription).toEqual({
      updatedFields: { n: 1 },
      removedFields: [],
      truncatedArrays: [],
    });
    // Without wallTime (before MongoDB 6.0) the commit time is the cluster time's second.
    expect(event.source.commitTime).toBe(new Date(0x635019a0 * 1000).toISOString());
  });

  it('maps a replace as its own op with the new document', () => {
    const event = change({
      _id: { _data: token(4) },
      operationType: 'replace',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { _id: id },
      fullDocument: { _id: id, firstName: 'Alice', lastName: 'Jones' },
    });
    expect(event).toMatchObject({
      op: 'replace',
      key: { _id: { $oid: '635019a078be67426d7cf4d2' } },
      before: null,
      after: { _id: { $oid: '635019a078be67426d7cf4d2' }, firstName: 'Alice', lastName: 'Jones' },
    });
    expect(event.updateDescription).toBeUndefined();
  });

  it('maps a delete, with the pre-image as before when the collection keeps them', () => {
    const plain = change({
      _id: { _data: token(5) },
      operationType: 'delete',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { _id: id },
    });
    expect(plain).toMatchObject({
      op: 'delete',
      key: { _id: { $oid: '635019a078be67426d7cf4d2' } },
      before: null,
      after: null,
    });
    const withImage = change({
      _id: { _data: token(6) },
      operationType: 'delete',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { _id: id },
      fullDocumentBeforeChange: { _id: id, firstName: 'Alice' },
    });
    expect(withImage.before).toEqual({ _id: { $oid: '635019a078be67426d7cf4d2' }, firstName: 'Alice' });
  });

  it('keeps the shard key fields of documentKey in the key', () => {
    const event = change({
      _id: { _data: token(7) },
      operationType: 'delete',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { userName: 'alice123', _id: id },
    });
    expect(event.key).toEqual({ userName: 'alice123', _id: { $oid: '635019a078be67426d7cf4d2' } });
  });

  it('maps drop, rename and dropDatabase to table events without a key', () => {
    const drop = change({
      _id: { _data: token(8) },
      operationType: 'drop',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
    });
    expect(drop).toMatchObject({
      op: 'drop',
      schema: 'engineering',
      table: 'users',
      key: null,
      before: null,
      after: null,
    });
    expect(orderingKey(drop)).toBe('t\u0000engineering\u0000users');

    const rename = change({
      _id: { _data: token(9) },
      operationType: 'rename',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
      to: { db: 'engineering', coll: 'people' },
    });
    expect(rename).toMatchObject({
      op: 'rename',
      table: 'users',
      to: { schema: 'engineering', table: 'people' },
      key: null,
    });
    expect(encodeEnvelope(rename)).toContain(
      '"table":"users","to":{"schema":"engineering","table":"people"},"key":null',
    );

    const dropDatabase = change({
      _id: { _data: token(10) },
      operationType: 'dropDatabase',
      clusterTime,
      ns: { db: 'engineering' },
    });
    expect(dropDatabase).toMatchObject({ op: 'dropDatabase', schema: 'engineering', table: '', key: null });
  });

  it('maps an invalidate (no namespace) and says the stream must be reopened after it', () => {
    const invalidateToken = '82635019A0000000102B042C0100296F5A1004AB1154ACACD849A48C61756D70D3B21F04';
    const mapped = mapChangeEvent(
      { _id: { _data: invalidateToken }, operationType: 'invalidate', clusterTime },
      ctx,
    );
    expect(mapped.invalidate).toBe(true);
    expect(mapped.event).toMatchObject({ op: 'invalidate', schema: 'engineering', table: '', key: null });
  });

  it('gives events of one transaction the commit time as commitLsn, txnNumber as xid and txnOpIndex as seq', () => {
    const event = change({
      _id: { _data: V1_TXN_TOKEN },
      operationType: 'insert',
      clusterTime: new Timestamp({ t: 0x635019a1, i: 2 }),
      txnNumber: Long.fromNumber(12),
      lsid: { id: collectionUUID, uid: Buffer.alloc(32) },
      ns: { db: 'engineering', coll: 'users' },
      documentKey: { _id: id },
      fullDocument: { _id: id },
    });
    expect(event.source).toMatchObject({ commitLsn: `${0x635019a1}.2`, xid: 12, seq: 3 });
  });

  it('gives the same id to the same change read twice, and distinct ids to distinct changes', () => {
    const doc = {
      _id: { _data: token(11) },
      operationType: 'drop',
      clusterTime,
      ns: { db: 'engineering', coll: 'users' },
    };
    expect(change(doc).id).toBe(change({ ...doc }).id);
    expect(change(doc).id).not.toBe(change({ ...doc, _id: { _data: token(12) } }).id);
  });

  it('refuses an event type it does not know, with what to do', () => {
    expect(() =>
      mapChangeEvent(
        {
          _id: { _data: token(13) },
          operationType: 'createIndexes',
          clusterTime,
          ns: { db: 'engineering', coll: 'users' },
        },
        ctx,
      ),
    ).toThrow(/unknown type "createIndexes"/);
  });

  it('refuses an event without a resume token', () => {
    expect(() => mapChangeEvent({ operationType: 'insert' }, ctx)).toThrow(/without a resume token/);
  });

  it('does not take a high-water mark for an event', () => {
    expect(() => mapChangeEvent({ _id: { _data: HIGH_WATER_MARK } }, ctx)).toThrow(
      /operationType is missing/,
    );
  });
});

describe('mapChangeEvent on the outbox collection', () => {
  const outboxCtx: MappingContext = {
    database: 'shop',
    outbox: { collection: 'outbox', columns: { ...DEFAULT_OUTBOX_COLUMNS, id: '_id' } },
  };

  it('turns an insert into the outbox event the Postgres outbox would publish', () => {
    const mapped = mapChangeEvent(
      {
        _id: { _data: token(20) },
        operationType: 'insert',
        clusterTime,
        wallTime,
        ns: { db: 'shop', coll: 'outbox' },
        documentKey: { _id: id },
        fullDocument: {
          _id: id,
          aggregatetype: 'order',
          aggregateid: Long.fromString('9007199254740993'),
          type: 'OrderPlaced',
          payload: { total: Decimal128.fromString('10.50'), lines: 2 },
          headers: { traceparent: '00-abc-def-01' },
        },
      },
      outboxCtx,
    );
    const event = mapped.event as OutboxEvent;
    expect(event).toEqual({
      kind: 'outbox',
      id: '635019a078be67426d7cf4d2',
      aggregateType: 'order',
      aggregateId: '9007199254740993',
      type: 'OrderPlaced',
      payload: '{"total":{"$numberDecimal":"10.50"},"lines":2}',
      headers: { traceparent: '00-abc-def-01' },
      source: expect.objectContaining({ lsn: token(20), commitTime: '2022-10-19T15:37:04.123Z' }),
    });
  });

  it('publishes a string payload verbatim, as the Postgres outbox does a text column', () => {
    const mapped = mapChangeEvent(
      {
        _id: { _data: token(21) },
        operationType: 'insert',
        clusterTime,
        ns: { db: 'shop', coll: 'outbox' },
        documentKey: { _id: 'evt-1' },
        fullDocument: {
          _id: 'evt-1',
          aggregatetype: 'order',
          aggregateid: '7',
          type: 'X',
          payload: '{"n": 12345678901234567890}',
        },
      },
      outboxCtx,
    );
    expect((mapped.event as OutboxEvent).payload).toBe('{"n": 12345678901234567890}');
  });

  it('ignores updates and deletes of the outbox (cleanup publishes nothing)', () => {
    for (const operationType of ['update', 'delete', 'replace']) {
      const mapped = mapChangeEvent(
        {
          _id: { _data: token(22) },
          operationType,
          clusterTime,
          ns: { db: 'shop', coll: 'outbox' },
          documentKey: { _id: id },
          updateDescription: { updatedFields: {}, removedFields: [], truncatedArrays: [] },
        },
        outboxCtx,
      );
      expect(mapped.event).toBeNull();
      expect(mapped.token).toBe(token(22));
    }
  });

  it('names the collection and the missing field of a bad outbox document', () => {
    expect(() =>
      mapChangeEvent(
        {
          _id: { _data: token(23) },
          operationType: 'insert',
          clusterTime,
          ns: { db: 'shop', coll: 'outbox' },
          documentKey: { _id: id },
          fullDocument: { _id: id, aggregatetype: 'order', type: 'X', payload: {} },
        },
        outboxCtx,
      ),
    ).toThrow(/MongoDB outbox shop\.outbox: .*aggregateid/);
  });

  it('treats a collection of the same name in another database as data', () => {
    const event = change(
      {
        _id: { _data: token(24) },
        operationType: 'insert',
        clusterTime,
        ns: { db: 'other', coll: 'outbox' },
        documentKey: { _id: id },
        fullDocument: { _id: id },
      },
      outboxCtx,
    );
    expect(event.op).toBe('insert');
  });
});
