import { Binary, Decimal128, Long, MaxKey, ObjectId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { decodeId, decodePosition, encodeId, encodePosition, type MongoCursor } from './position.js';
import { redactUrl } from './source.js';
import { MANUAL_INSERT_TOKEN } from './tokens.test-support.js';

const where = 'JetStream KV bucket sluice-positions, key sluice.mongodb.shop';

describe('stored position', () => {
  it('round-trips a token with _typeBits and snapshot progress', () => {
    const cursor: MongoCursor = {
      token: { _data: MANUAL_INSERT_TOKEN, _typeBits: new Binary(Buffer.from([0x40]), 0) },
      snapshot: {
        collections: ['orders', 'users'],
        index: 1,
        after: encodeId(Long.fromString('9007199254740993')),
      },
    };
    const text = encodePosition(cursor, 'shop');
    expect(JSON.parse(text)).toMatchObject({
      version: 1,
      database: 'shop',
      token: { _data: MANUAL_INSERT_TOKEN },
    });
    const back = decodePosition(text, 'shop', where);
    expect(back.token['_data']).toBe(MANUAL_INSERT_TOKEN);
    expect([...(back.token['_typeBits'] as Binary).buffer]).toEqual([0x40]);
    expect(back.snapshot).toEqual(cursor.snapshot);
  });

  it("refuses another database's position, saying how to keep them apart", () => {
    const text = encodePosition({ token: { _data: MANUAL_INSERT_TOKEN }, snapshot: null }, 'shop');
    expect(() => decodePosition(text, 'billing', where)).toThrow(
      /belongs to database "shop", not "billing"[\s\S]*SLUICE_SLOT/,
    );
  });

  it('refuses a corrupt entry with the re-snapshot recovery', () => {
    expect(() => decodePosition('not json', 'shop', where)).toThrow(
      /unusable: it is not JSON[\s\S]*SLUICE_SNAPSHOT=initial/,
    );
    const badToken = JSON.stringify({ version: 1, database: 'shop', token: { _data: 'zz' }, snapshot: null });
    expect(() => decodePosition(badToken, 'shop', where)).toThrow(/invalid MongoDB resume token/);
    const badSnapshot = JSON.stringify({
      version: 1,
      database: 'shop',
      token: { _data: MANUAL_INSERT_TOKEN },
      snapshot: { index: 'x' },
    });
    expect(() => decodePosition(badSnapshot, 'shop', where)).toThrow(/snapshot progress is malformed/);
  });
});

describe('snapshot _id bounds', () => {
  it('keep the BSON type of every kind of _id', () => {
    for (const id of [
      new ObjectId(),
      Long.fromString('-5'),
      Decimal128.fromString('1.10'),
      'text',
      7,
      { a: 1 },
      new MaxKey(),
    ]) {
      expect(encodeId(decodeId(encodeId(id)))).toBe(encodeId(id));
    }
    expect(encodeId(Long.fromNumber(7))).not.toBe(encodeId(7));
  });
});

describe('redactUrl', () => {
  it('hides the password of a MongoDB URL', () => {
    expect(redactUrl('mongodb://sluice:s3cr%40t@db1:27017,db2/?replicaSet=rs0')).toBe(
      'mongodb://sluice:***@db1:27017,db2/?replicaSet=rs0',
    );
    expect(redactUrl('mongodb+srv://u:p@cluster.example.net/x')).toBe(
      'mongodb+srv://u:***@cluster.example.net/x',
    );
    expect(redactUrl('mongodb://db:27017')).toBe('mongodb://db:27017');
  });
});
