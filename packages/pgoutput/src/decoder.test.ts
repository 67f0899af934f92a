import { describe, expect, it } from 'vitest';
import { PgOutputDecoder } from './decoder.js';
import {
  InvalidFieldError,
  PgOutputDecodeError,
  TruncatedMessageError,
  UnknownMessageTypeError,
} from './errors.js';
import type { InsertMessage, LogicalMessage } from './messages.js';
import { bytes } from './test-support/bytes.js';
import { decoderFor, STREAM_START } from './test-support/decoders.js';
import { fixtures, LSN, REL, SUB_XID, TIME, XID } from './test-support/fixtures.js';

const STREAM_STOP = bytes().tag('E').build();

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, none was thrown');
}

describe('PgOutputDecoder', () => {
  describe('decodes every message type as the specification lays it out', () => {
    for (const fixture of fixtures) {
      it(fixture.name, () => {
        expect(decoderFor(fixture).decode(fixture.bytes)).toStrictEqual(fixture.expected);
      });
    }
  });

  describe('decodes each message with the protocol version that introduced it', () => {
    for (const fixture of fixtures) {
      it(`${fixture.name} (version ${fixture.protocolVersion})`, () => {
        expect(decoderFor(fixture, fixture.protocolVersion).decode(fixture.bytes)).toStrictEqual(
          fixture.expected,
        );
      });
    }
  });

  describe('rejects messages a lower protocol version cannot produce', () => {
    for (const fixture of fixtures.filter(
      (f) => f.protocolVersion > 1 && f.protocolVersion < 4 && !f.inStream,
    )) {
      it(fixture.name, () => {
        const decoder = new PgOutputDecoder({ protocolVersion: (fixture.protocolVersion - 1) as 1 | 2 | 3 });
        const err = catchError(() => decoder.decode(fixture.bytes));
        expect(err).toBeInstanceOf(UnknownMessageTypeError);
        expect((err as Error).message).toMatch(/exists from protocol version \d/);
      });
    }
  });

  it('decodes messages at a byte offset inside a larger buffer, and from a Node Buffer', () => {
    for (const fixture of fixtures) {
      const padded = new Uint8Array(fixture.bytes.length + 7);
      padded.set(fixture.bytes, 3);
      expect(decoderFor(fixture).decode(padded.subarray(3, 3 + fixture.bytes.length))).toStrictEqual(
        fixture.expected,
      );
      expect(decoderFor(fixture).decode(Buffer.from(fixture.bytes))).toStrictEqual(fixture.expected);
    }
  });

  it('reads the leading xid only between Stream Start and Stream Stop', () => {
    const decoder = new PgOutputDecoder({ protocolVersion: 2 });
    const plain = bytes().tag('I').int32(REL).tag('N').tuple(['1']).build();
    const streamed = bytes().tag('I').int32(XID).int32(REL).tag('N').tuple(['1']).build();

    expect(decoder.decode(plain)).toMatchObject({ xid: undefined, relationOid: REL });
    expect(decoder.inStream).toBe(false);
    expect(decoder.decode(STREAM_START)).toStrictEqual({ tag: 'stream_start', xid: XID, firstSegment: true });
    expect(decoder.inStream).toBe(true);
    expect(decoder.decode(streamed)).toMatchObject({ xid: XID, relationOid: REL });
    expect(decoder.decode(STREAM_STOP)).toStrictEqual({ tag: 'stream_stop' });
    expect(decoder.inStream).toBe(false);
    expect(decoder.decode(plain)).toMatchObject({ xid: undefined, relationOid: REL });
  });

  it('stream commit and stream abort arrive outside the stream block and carry their own xid', () => {
    const decoder = new PgOutputDecoder({ protocolVersion: 2 });
    decoder.decode(STREAM_START);
    decoder.decode(STREAM_STOP);
    const abort = bytes().tag('A').int32(XID).int32(SUB_XID).build();
    expect(decoder.decode(abort)).toStrictEqual({
      tag: 'stream_abort',
      xid: XID,
      subXid: SUB_XID,
      abortLsn: null,
      abortTime: null,
    });
    expect(decoder.inStream).toBe(false);
  });

  it('reset() leaves the stream state, as after a reconnect', () => {
    const decoder = new PgOutputDecoder();
    decoder.decode(STREAM_START);
    decoder.reset();
    expect(decoder.inStream).toBe(false);
    const plain = bytes().tag('Y').int32(16_500).cstring('public').cstring('mood').build();
    expect(decoder.decode(plain)).toMatchObject({ tag: 'type', xid: undefined, typeOid: 16_500 });
  });

  it('returns strings and copies, never views of the input, so buffers can be reused', () => {
    const binary = new Uint8Array([1, 2, 3]);
    const insertBytes = bytes().tag('I').int32(REL).tag('N').tuple(['abc', binary]).build();
    const messageBytes = bytes().tag('M').int8(1).int64(LSN).cstring('p').int32(2).raw([9, 9]).build();
    const decoder = new PgOutputDecoder();
    const insert = decoder.decode(insertBytes) as InsertMessage;
    const message = decoder.decode(messageBytes) as LogicalMessage;
    insertBytes.fill(0);
    messageBytes.fill(0);
    expect(insert.new).toStrictEqual(['abc', new Uint8Array([1, 2, 3])]);
    expect(message.content).toStrictEqual(new Uint8Array([9, 9]));
  });

  it('decodes text columns holding multi-byte UTF-8 next to ASCII ones', () => {
    const values = ['plain', 'żółć', '', '日本語テキスト', '🎉 emoji', 'x'.repeat(300)];
    const large = ['plain', 'y'.repeat(5000), 'żółć'];
    const decoded = new PgOutputDecoder().decode(bytes().tag('I').int32(REL).tag('N').tuple(values).build());
    expect((decoded as InsertMessage).new).toStrictEqual(values);
    const decodedLarge = new PgOutputDecoder().decode(
      bytes().tag('I').int32(REL).tag('N').tuple(large).build(),
    );
    expect((decodedLarge as InsertMessage).new).toStrictEqual(large);
  });

  it('decodes runs of ASCII and non-ASCII rows alike on one decoder', () => {
    const decoder = new PgOutputDecoder();
    for (let i = 0; i < 100; i++) {
      const values = i % 7 < 3 ? [`ascii ${i}`, 'x'] : [`ünïcödé ${i}`, '€'];
      const update = bytes()
        .tag('U')
        .int32(REL)
        .tag('O')
        .tuple(['old', `${i}`])
        .tag('N')
        .tuple(values)
        .build();
      expect(decoder.decode(update)).toMatchObject({ old: ['old', `${i}`], new: values });
    }
  });

  it('replaces invalid UTF-8 with U+FFFD instead of failing', () => {
    const raw = bytes().tag('I').int32(REL).tag('N').int16(2);
    raw.tag('t').int32(3).raw([0x61, 0xff, 0x62]);
    raw.tag('t').int32(2).raw([0xc3, 0xa9]);
    const decoded = new PgOutputDecoder().decode(raw.build()) as InsertMessage;
    expect(decoded.new).toStrictEqual(['a\uFFFDb', 'é']);
  });

  it('decodes the Stream Abort parallel fields only from protocol version 4', () => {
    const parallel = bytes().tag('A').int32(XID).int32(SUB_XID).int64(LSN).int64(TIME).build();
    expect(new PgOutputDecoder({ protocolVersion: 4 }).decode(parallel)).toMatchObject({
      abortLsn: LSN,
      abortTime: TIME,
    });
    const err = catchError(() => new PgOutputDecoder({ protocolVersion: 3 }).decode(parallel));
    expect(err).toBeInstanceOf(InvalidFieldError);
    expect(err).toMatchObject({ messageType: 'stream_abort', field: 'end of message', offset: 9 });
  });

  it('rejects an invalid protocol version up front', () => {
    expect(() => new PgOutputDecoder({ protocolVersion: 5 as 4 })).toThrow(
      /`protocolVersion` to be 1, 2, 3 or 4/,
    );
  });

  describe('errors name the message type, the field and the byte offset', () => {
    it('an empty message', () => {
      const err = catchError(() => new PgOutputDecoder().decode(new Uint8Array(0)));
      expect(err).toBeInstanceOf(TruncatedMessageError);
      expect(err).toMatchObject({ messageType: 'unknown', field: 'message type', offset: 0 });
    });

    it('an unknown message type', () => {
      const err = catchError(() => new PgOutputDecoder().decode(new Uint8Array([0x5a, 1, 2])));
      expect(err).toBeInstanceOf(UnknownMessageTypeError);
      expect(err).toMatchObject({
        messageType: "0x5a ('Z')",
        field: 'message type',
        offset: 0,
        tagByte: 0x5a,
      });
      expect((err as Error).message).toBe(
        "0x5a ('Z') message, field message type at byte 0: unknown pgoutput message type 0x5a ('Z'); the bytes are not pgoutput or are out of sync",
      );
    });

    it('a truncated field', () => {
      const err = catchError(() =>
        new PgOutputDecoder().decode(bytes().tag('B').int64(LSN).int32(0).build()),
      );
      expect(err).toBeInstanceOf(TruncatedMessageError);
      expect(err).toMatchObject({
        messageType: 'begin',
        field: 'commit timestamp',
        offset: 9,
        needed: 8,
        available: 4,
      });
      expect((err as Error).message).toMatch(
        /^begin message, field commit timestamp at byte 9: message truncated/,
      );
    });

    it('a value length larger than the rest of the message (no allocation of that size)', () => {
      const raw = bytes()
        .tag('I')
        .int32(REL)
        .tag('N')
        .int16(1)
        .tag('t')
        .int32(0x7fff_ffff)
        .raw([0x61])
        .build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(TruncatedMessageError);
      expect(err).toMatchObject({
        messageType: 'insert',
        field: 'new tuple column 0 value',
        offset: 13,
        needed: 0x7fff_ffff,
        available: 1,
      });
    });

    it('a negative value length', () => {
      const raw = bytes().tag('I').int32(REL).tag('N').int16(1).tag('t').int32(-1).build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(InvalidFieldError);
      expect(err).toMatchObject({ messageType: 'insert', field: 'new tuple column 0 length', offset: 9 });
    });

    it('a logical message content length larger than the message', () => {
      const raw = bytes().tag('M').int8(1).int64(LSN).cstring('p').int32(1_000_000).raw([1, 2]).build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(TruncatedMessageError);
      expect(err).toMatchObject({ messageType: 'message', field: 'content', offset: 16, needed: 1_000_000 });
    });

    it('a truncate relation count larger than the message', () => {
      const raw = bytes().tag('T').int32(-1).int8(0).int32(REL).build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(TruncatedMessageError);
      expect(err).toMatchObject({ messageType: 'truncate', field: 'relation OIDs', offset: 6 });
    });

    it('a tuple column count larger than the message', () => {
      const raw = bytes().tag('I').int32(REL).tag('N').int16(0xffff).tag('n').build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(TruncatedMessageError);
      expect(err).toMatchObject({ messageType: 'insert', field: 'new tuple columns', offset: 8 });
    });

    it('an unknown tuple column kind', () => {
      const raw = bytes().tag('I').int32(REL).tag('N').int16(2).tag('n').tag('x').build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(InvalidFieldError);
      expect(err).toMatchObject({ messageType: 'insert', field: 'new tuple column 1 kind', offset: 9 });
      expect((err as Error).message).toContain(
        "unknown column kind 0x78 ('x'); expected 'n', 'u', 't' or 'b'",
      );
    });

    it('an unknown replica identity', () => {
      const raw = bytes().tag('R').int32(REL).cstring('s').cstring('t').tag('x').int16(0).build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(InvalidFieldError);
      expect(err).toMatchObject({ messageType: 'relation', field: 'replica identity', offset: 9 });
    });

    it('an insert without the N marker', () => {
      const raw = bytes().tag('I').int32(REL).tag('K').tuple([]).build();
      expect(catchError(() => new PgOutputDecoder().decode(raw))).toMatchObject({
        name: 'InvalidFieldError',
        messageType: 'insert',
        field: 'new tuple marker',
        offset: 5,
      });
    });

    it('an update whose old tuple is not followed by N', () => {
      const raw = bytes().tag('U').int32(REL).tag('K').tuple(['1']).tag('K').tuple(['2']).build();
      expect(catchError(() => new PgOutputDecoder().decode(raw))).toMatchObject({
        name: 'InvalidFieldError',
        messageType: 'update',
        field: 'new tuple marker',
        offset: 14,
      });
    });

    it('a delete with N instead of K or O', () => {
      const raw = bytes().tag('D').int32(REL).tag('N').tuple(['1']).build();
      expect(catchError(() => new PgOutputDecoder().decode(raw))).toMatchObject({
        name: 'InvalidFieldError',
        messageType: 'delete',
        field: 'old tuple marker',
        offset: 5,
      });
    });

    it('a string without its NUL terminator', () => {
      const raw = bytes().tag('O').int64(LSN).raw([0x61, 0x62]).build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(TruncatedMessageError);
      expect(err).toMatchObject({
        messageType: 'origin',
        field: 'origin name (no NUL terminator)',
        offset: 9,
      });
    });

    it('bytes after the end of the message', () => {
      const raw = bytes().tag('E').int8(0).build();
      const err = catchError(() => new PgOutputDecoder().decode(raw));
      expect(err).toBeInstanceOf(InvalidFieldError);
      expect(err).toBeInstanceOf(PgOutputDecodeError);
      expect(err).toMatchObject({ messageType: 'stream_stop', field: 'end of message', offset: 1 });
    });
  });
});
