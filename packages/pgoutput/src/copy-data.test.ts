// Streaming Replication Protocol, CopyData payloads after START_REPLICATION:
// https://www.postgresql.org/docs/current/protocol-replication.html#PROTOCOL-REPLICATION-START-REPLICATION
import { describe, expect, it } from 'vitest';
import {
  decodeReplicationMessage,
  encodeStandbyStatusUpdate,
  PG_EPOCH_OFFSET_MICROS,
  pgNow,
  pgTimestampToDate,
  pgTimestampToIso,
} from './copy-data.js';
import { InvalidFieldError, TruncatedMessageError, UnknownMessageTypeError } from './errors.js';
import { bytes } from './test-support/bytes.js';
import { END_LSN, LSN, TIME } from './test-support/fixtures.js';

describe('decodeReplicationMessage', () => {
  it("decodes XLogData ('w'), the pgoutput bytes being a view of the input", () => {
    const payload = [0x42, 1, 2, 3];
    const frame = bytes().tag('w').int64(LSN).int64(END_LSN).int64(TIME).raw(payload).build();
    const message = decodeReplicationMessage(frame);
    expect(message).toStrictEqual({
      tag: 'xlogdata',
      walStart: LSN,
      walEnd: END_LSN,
      sendTime: TIME,
      data: new Uint8Array(payload),
    });
    frame[25] = 0x43;
    expect(message.tag === 'xlogdata' && message.data[0]).toBe(0x43);
  });

  it('decodes XLogData at an offset inside a larger buffer, and from a Node Buffer', () => {
    const frame = bytes().tag('w').int64(LSN).int64(END_LSN).int64(TIME).raw([7]).build();
    const padded = new Uint8Array(frame.length + 5);
    padded.set(frame, 5);
    for (const input of [padded.subarray(5), Buffer.from(frame)]) {
      expect(decodeReplicationMessage(input)).toStrictEqual({
        tag: 'xlogdata',
        walStart: LSN,
        walEnd: END_LSN,
        sendTime: TIME,
        data: new Uint8Array([7]),
      });
    }
  });

  it("decodes Primary keepalive ('k') with and without a reply request", () => {
    expect(
      decodeReplicationMessage(bytes().tag('k').int64(END_LSN).int64(TIME).int8(1).build()),
    ).toStrictEqual({
      tag: 'keepalive',
      walEnd: END_LSN,
      sendTime: TIME,
      replyRequested: true,
    });
    expect(
      decodeReplicationMessage(bytes().tag('k').int64(END_LSN).int64(TIME).int8(0).build()),
    ).toMatchObject({
      replyRequested: false,
    });
  });

  it('every cut of a frame fails with TruncatedMessageError naming the field', () => {
    const xlog = bytes().tag('w').int64(LSN).int64(END_LSN).int64(TIME).build();
    const keepalive = bytes().tag('k').int64(END_LSN).int64(TIME).int8(0).build();
    for (const frame of [xlog, keepalive]) {
      for (let cut = 0; cut < frame.length; cut++) {
        expect(() => decodeReplicationMessage(frame.subarray(0, cut)), `cut at ${cut}`).toThrow(
          TruncatedMessageError,
        );
      }
    }
    expect(() => decodeReplicationMessage(xlog.subarray(0, 12))).toThrow(
      'xlogdata message, field WAL end at byte 9: message truncated',
    );
    // A frame with no pgoutput bytes is a whole XLogData.
    expect(decodeReplicationMessage(xlog)).toMatchObject({ data: new Uint8Array(0) });
  });

  it('rejects unknown tags and trailing keepalive bytes', () => {
    expect(() => decodeReplicationMessage(new Uint8Array([0x72, 0]))).toThrow(UnknownMessageTypeError);
    expect(() => decodeReplicationMessage(new Uint8Array([0x72, 0]))).toThrow(
      /expected 'w' \(XLogData\) or 'k'/,
    );
    const long = bytes().tag('k').int64(END_LSN).int64(TIME).int8(0).int8(0).build();
    expect(() => decodeReplicationMessage(long)).toThrow(InvalidFieldError);
  });
});

describe('encodeStandbyStatusUpdate', () => {
  it("writes 'r', written, flushed, applied, client time and the reply flag", () => {
    const encoded = encodeStandbyStatusUpdate({
      written: END_LSN,
      flushed: LSN,
      applied: 1n,
      clientTime: TIME,
      replyRequested: true,
    });
    expect(encoded).toStrictEqual(
      bytes().tag('r').int64(END_LSN).int64(LSN).int64(1n).int64(TIME).int8(1).build(),
    );
    expect(encoded.length).toBe(34);
  });

  it('writes LSNs up to 2^64-1 and rejects values outside it', () => {
    const max = 0xffff_ffff_ffff_ffffn;
    const encoded = encodeStandbyStatusUpdate({
      written: max,
      flushed: max,
      applied: 0n,
      clientTime: -1n,
      replyRequested: false,
    });
    expect(encoded.subarray(1, 9)).toStrictEqual(new Uint8Array(8).fill(0xff));
    expect(encoded[33]).toBe(0);
    expect(() =>
      encodeStandbyStatusUpdate({
        written: -1n,
        flushed: 0n,
        applied: 0n,
        clientTime: 0n,
        replyRequested: false,
      }),
    ).toThrow(/`written` to be an LSN/);
    expect(() =>
      encodeStandbyStatusUpdate({
        written: 0n,
        flushed: max + 1n,
        applied: 0n,
        clientTime: 0n,
        replyRequested: false,
      }),
    ).toThrow(/`flushed` to be an LSN/);
  });
});

describe('Postgres timestamps (microseconds since 2000-01-01 UTC)', () => {
  it('pgTimestampToIso keeps microseconds', () => {
    expect(pgTimestampToIso(TIME)).toBe('2024-01-02T03:04:05.123456Z');
    expect(pgTimestampToIso(0n)).toBe('2000-01-01T00:00:00.000000Z');
    expect(pgTimestampToIso(-1n)).toBe('1999-12-31T23:59:59.999999Z');
    expect(pgTimestampToIso(-PG_EPOCH_OFFSET_MICROS)).toBe('1970-01-01T00:00:00.000000Z');
    expect(pgTimestampToIso(-PG_EPOCH_OFFSET_MICROS - 62_135_596_800_000_000n)).toBe(
      '0001-01-01T00:00:00.000000Z',
    );
    expect(pgTimestampToIso(252_455_616_000_000_000n)).toBe('+010000-01-01T00:00:00.000000Z');
    expect(pgTimestampToIso(0x7fff_ffff_ffff_ffffn)).toBe('infinity');
    expect(pgTimestampToIso(-0x8000_0000_0000_0000n)).toBe('-infinity');
  });

  it('pgTimestampToDate agrees with the ISO form to the millisecond, rounding down', () => {
    expect(pgTimestampToDate(TIME).toISOString()).toBe('2024-01-02T03:04:05.123Z');
    expect(pgTimestampToDate(-1n).toISOString()).toBe('1999-12-31T23:59:59.999Z');
    expect(pgTimestampToDate(0n).getTime()).toBe(Date.UTC(2000, 0, 1));
    expect(Number.isNaN(pgTimestampToDate(0x7fff_ffff_ffff_ffffn).getTime())).toBe(true);
  });

  it('pgNow is the current time on the Postgres epoch', () => {
    const before = BigInt(Date.now()) * 1000n - PG_EPOCH_OFFSET_MICROS;
    const now = pgNow();
    const after = BigInt(Date.now()) * 1000n - PG_EPOCH_OFFSET_MICROS;
    expect(now >= before && now <= after).toBe(true);
  });
});
