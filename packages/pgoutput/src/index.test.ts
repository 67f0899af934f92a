import { describe, expect, expectTypeOf, it } from 'vitest';
import type { DecodedRow, JsonValue, PgOutputMessage, ReplicationMessage } from './index.js';
import * as api from './index.js';

describe('@sluice/pgoutput public surface', () => {
  it('exports the decoder, framing, LSN, value layer and error classes', () => {
    expect(Object.keys(api).sort()).toStrictEqual([
      'ARRAY_DELIMITERS',
      'ARRAY_ELEMENT_OIDS',
      'InvalidFieldError',
      'InvalidLsnError',
      'PG_EPOCH_OFFSET_MICROS',
      'PgOutputDecodeError',
      'PgOutputDecoder',
      'PgValueParseError',
      'RawJson',
      'TruncatedMessageError',
      'TupleShapeError',
      'TypeOid',
      'UNCHANGED_TOAST',
      'UnknownMessageTypeError',
      'builtinTypeOid',
      'bytesToBase64',
      'decodeReplicationMessage',
      'encodeStandbyStatusUpdate',
      'formatLsn',
      'keyTupleToRow',
      'parseLsn',
      'parseValue',
      'pgNow',
      'pgTimestampToDate',
      'pgTimestampToIso',
      'tupleToRow',
      'valueParserFor',
    ]);
  });

  it('has the signatures other packages code against', () => {
    expectTypeOf(api.PgOutputDecoder.prototype.decode).toEqualTypeOf<(data: Uint8Array) => PgOutputMessage>();
    expectTypeOf(api.decodeReplicationMessage).toEqualTypeOf<(buf: Uint8Array) => ReplicationMessage>();
    expectTypeOf(api.encodeStandbyStatusUpdate).returns.toEqualTypeOf<Uint8Array>();
    expectTypeOf(api.parseLsn).toEqualTypeOf<(text: string) => bigint>();
    expectTypeOf(api.formatLsn).toEqualTypeOf<(lsn: bigint) => string>();
    expectTypeOf(api.parseValue).toEqualTypeOf<(text: string, typeOid: number) => JsonValue>();
    expectTypeOf(api.valueParserFor).returns.toEqualTypeOf<(text: string) => JsonValue>();
    expectTypeOf(api.tupleToRow).returns.toEqualTypeOf<DecodedRow>();
    expectTypeOf<DecodedRow>().toEqualTypeOf<{ row: Record<string, JsonValue>; unchanged: string[] }>();
    expectTypeOf(api.pgNow).returns.toEqualTypeOf<bigint>();
    expectTypeOf(api.pgTimestampToIso).toEqualTypeOf<(us: bigint) => string>();
  });

  it('errors are named classes with the fields a person needs', () => {
    const err = new api.TruncatedMessageError(
      { messageType: 'insert', field: 'relation OID', offset: 1 },
      4,
      2,
    );
    expect(err).toBeInstanceOf(api.PgOutputDecodeError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('TruncatedMessageError');
    expect(err.message).toBe(
      'insert message, field relation OID at byte 1: message truncated: needs 4 byte(s), 2 left; the CopyData frame was cut or the stream is out of sync',
    );
  });
});
