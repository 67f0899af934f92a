// CopyData payloads of the streaming replication protocol (XLogData, Primary keepalive, Standby status update):
// https://www.postgresql.org/docs/current/protocol-replication.html#PROTOCOL-REPLICATION-START-REPLICATION

import { formatCivilDate, formatTimeOfDay } from './calendar.js';
import { InvalidFieldError, TruncatedMessageError, UnknownMessageTypeError } from './errors.js';
import type { PrimaryKeepalive, ReplicationMessage, StandbyStatusUpdate, XLogData } from './messages.js';

/** Microseconds from 1970-01-01 (Unix epoch) to 2000-01-01 (Postgres epoch). */
export const PG_EPOCH_OFFSET_MICROS = 946_684_800_000_000n;
const PG_EPOCH_OFFSET_MS = 946_684_800_000;
/** Postgres' `infinity` / `-infinity` timestamps (DT_NOEND / DT_NOBEGIN). */
const PG_INFINITY = 0x7fff_ffff_ffff_ffffn;
const PG_MINUS_INFINITY = -0x8000_0000_0000_0000n;

const XLOG_HEADER = 1 + 8 + 8 + 8;
const KEEPALIVE_LENGTH = 1 + 8 + 8 + 1;
const STATUS_UPDATE_LENGTH = 1 + 8 + 8 + 8 + 8 + 1;

/**
 * Decodes the payload of one CopyData ('d') message received after START_REPLICATION: XLogData ('w') or
 * Primary keepalive ('k'). XLogData's `data` is a view into `buf`, not a copy.
 */
export function decodeReplicationMessage(buf: Uint8Array): ReplicationMessage {
  if (buf.length === 0) {
    throw new TruncatedMessageError({ messageType: 'unknown', field: 'message type', offset: 0 }, 1, 0);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = buf[0]!;
  if (tag === 0x77 /* w */) {
    requireLength(buf, 'xlogdata');
    const message: XLogData = {
      tag: 'xlogdata',
      walStart: view.getBigUint64(1),
      walEnd: view.getBigUint64(9),
      sendTime: view.getBigInt64(17),
      data: new Uint8Array(buf.buffer, buf.byteOffset + XLOG_HEADER, buf.length - XLOG_HEADER),
    };
    return message;
  }
  if (tag === 0x6b /* k */) {
    requireLength(buf, 'keepalive');
    if (buf.length > KEEPALIVE_LENGTH) {
      throw new InvalidFieldError(`${buf.length - KEEPALIVE_LENGTH} unexpected byte(s) after the message`, {
        messageType: 'keepalive',
        field: 'end of message',
        offset: KEEPALIVE_LENGTH,
      });
    }
    const message: PrimaryKeepalive = {
      tag: 'keepalive',
      walEnd: view.getBigUint64(1),
      sendTime: view.getBigInt64(9),
      replyRequested: buf[17] !== 0,
    };
    return message;
  }
  const shown = `0x${tag.toString(16).padStart(2, '0')}`;
  throw new UnknownMessageTypeError(
    { messageType: shown, field: 'message type', offset: 0 },
    tag,
    `unknown replication message type ${shown}; expected 'w' (XLogData) or 'k' (Primary keepalive)`,
  );
}

/** Field layouts, to name the first field a short message cuts: [offset, size, name]. */
const LAYOUT: Record<'xlogdata' | 'keepalive', readonly (readonly [number, number, string])[]> = {
  xlogdata: [
    [1, 8, 'WAL start'],
    [9, 8, 'WAL end'],
    [17, 8, 'send time'],
  ],
  keepalive: [
    [1, 8, 'WAL end'],
    [9, 8, 'send time'],
    [17, 1, 'reply requested'],
  ],
};

function requireLength(buf: Uint8Array, messageType: 'xlogdata' | 'keepalive'): void {
  for (const [offset, size, field] of LAYOUT[messageType]) {
    if (offset + size > buf.length) {
      throw new TruncatedMessageError({ messageType, field, offset }, size, Math.max(0, buf.length - offset));
    }
  }
}

/** Encodes a Standby status update ('r'), the payload of a CopyData message sent to the server. */
export function encodeStandbyStatusUpdate(update: StandbyStatusUpdate): Uint8Array {
  const out = new Uint8Array(STATUS_UPDATE_LENGTH);
  const view = new DataView(out.buffer);
  out[0] = 0x72; // r
  view.setBigUint64(1, checkedLsn(update.written, 'written'));
  view.setBigUint64(9, checkedLsn(update.flushed, 'flushed'));
  view.setBigUint64(17, checkedLsn(update.applied, 'applied'));
  view.setBigInt64(25, BigInt.asIntN(64, update.clientTime));
  out[33] = update.replyRequested ? 1 : 0;
  return out;
}

function checkedLsn(lsn: bigint, field: string): bigint {
  if (typeof lsn !== 'bigint' || lsn < 0n || lsn > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(
      `Expected \`${field}\` to be an LSN (a bigint in 0 … 2^64-1), got \`${String(lsn)}\` (${typeof lsn})`,
    );
  }
  return lsn;
}

/** Now, in microseconds since the Postgres epoch (2000-01-01 UTC), as the protocol's timestamps are. */
export function pgNow(): bigint {
  return BigInt(Date.now() - PG_EPOCH_OFFSET_MS) * 1000n;
}

/** A protocol timestamp as a Date (millisecond precision; Postgres' ±infinity give an Invalid Date). */
export function pgTimestampToDate(us: bigint): Date {
  if (us === PG_INFINITY || us === PG_MINUS_INFINITY) return new Date(Number.NaN);
  // Floor division so that timestamps before 2000 round down like the microseconds they drop.
  let ms = us / 1000n;
  if (us < 0n && ms * 1000n !== us) ms -= 1n;
  return new Date(Number(ms) + PG_EPOCH_OFFSET_MS);
}

/**
 * A protocol timestamp as ISO 8601 in UTC with all six fractional digits: `2024-01-02T03:04:05.123456Z`.
 * Postgres' ±infinity become `'infinity'` / `'-infinity'`. Years outside 0000–9999 use the extended
 * `±YYYYYY` form, as `Date.prototype.toISOString` does.
 */
export function pgTimestampToIso(us: bigint): string {
  if (us === PG_INFINITY) return 'infinity';
  if (us === PG_MINUS_INFINITY) return '-infinity';
  const unixMicros = us + PG_EPOCH_OFFSET_MICROS;
  let seconds = unixMicros / 1_000_000n;
  let micros = unixMicros - seconds * 1_000_000n;
  if (micros < 0n) {
    micros += 1_000_000n;
    seconds -= 1n;
  }
  const secs = Number(seconds);
  let days = Math.floor(secs / 86_400);
  let secOfDay = secs - days * 86_400;
  if (secOfDay < 0) {
    secOfDay += 86_400;
    days -= 1;
  }
  return `${formatCivilDate(days)}T${formatTimeOfDay(secOfDay)}.${String(micros).padStart(6, '0')}Z`;
}
