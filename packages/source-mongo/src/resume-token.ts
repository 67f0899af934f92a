import { createHash } from 'node:crypto';
import { PermanentError } from '@sluice/core';

/**
 * What Sluice reads from a change stream resume token's `_data`: MongoDB encodes it as a
 * KeyString (hex) of clusterTime, version, tokenType (v1+), txnOpIndex, fromInvalidate (v1+),
 * collection UUID and the event identifier. Only the leading fields are decoded: the server
 * compares tokens as opaque bytes, and so does Sluice (`compareResumeTokens`).
 *
 * Layout: src/mongo/db/pipeline/resume_token.cpp (ResumeToken::getData) and
 * src/mongo/db/storage/key_string.cpp (CType values) in the MongoDB server sources.
 */
export interface ResumeTokenData {
  clusterTime: { t: number; i: number };
  version: number;
  /** 128 for an event's token, 0 for a high-water mark (a position between events). */
  tokenType: number;
  /** Index of the event within its transaction (0 outside transactions). */
  txnOpIndex: number;
  fromInvalidate: boolean;
}

export const EVENT_TOKEN = 128;
export const HIGH_WATER_MARK_TOKEN = 0;

/** A resume token `_data` that cannot be decoded: the stored position is corrupt or not MongoDB's. */
export class InvalidResumeTokenError extends PermanentError {
  override name = 'InvalidResumeTokenError';
  constructor(detail: string, data: string) {
    super(`invalid MongoDB resume token ${JSON.stringify(shorten(data))}: ${detail}`, {
      code: 'invalid_resume_token',
      hint: 'the stored position is unusable: take a new snapshot (see docs/mongodb.md, "Recovering from a lost position")',
    });
  }
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

// KeyString CTypes (key_string.cpp).
const CTYPE_TIMESTAMP = 130;
const CTYPE_NUMERIC_ZERO = 41;
const CTYPE_POSITIVE_1_BYTE_INT = 43;
const CTYPE_POSITIVE_8_BYTE_INT = 50;
const CTYPE_BOOL_FALSE = 110;
const CTYPE_BOOL_TRUE = 111;

export function decodeResumeToken(data: string): ResumeTokenData {
  if (data.length === 0 || data.length % 2 !== 0 || !/^[0-9A-Fa-f]+$/.test(data)) {
    throw new InvalidResumeTokenError('_data is not a hex string', data);
  }
  const bytes = Buffer.from(data, 'hex');
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > bytes.length) throw new InvalidResumeTokenError(`ends inside ${what} at byte ${at}`, data);
  };
  need(9, 'clusterTime');
  if (bytes[at] !== CTYPE_TIMESTAMP) {
    throw new InvalidResumeTokenError(`expected a timestamp at byte 0, found type ${bytes[at]}`, data);
  }
  const clusterTime = { t: bytes.readUInt32BE(at + 1), i: bytes.readUInt32BE(at + 5) };
  at += 9;
  const int = (what: string): number => {
    need(1, what);
    const type = bytes[at] as number;
    at++;
    if (type === CTYPE_NUMERIC_ZERO) return 0;
    if (type < CTYPE_POSITIVE_1_BYTE_INT || type > CTYPE_POSITIVE_8_BYTE_INT) {
      throw new InvalidResumeTokenError(`${what} at byte ${at - 1} is not a non-negative integer`, data);
    }
    const size = type - CTYPE_POSITIVE_1_BYTE_INT + 1;
    need(size, what);
    // The integer is stored shifted left by one (the low bit flags a fractional part).
    let n = 0;
    for (let k = 0; k < size; k++) n = n * 256 + (bytes[at + k] as number);
    at += size;
    if (n % 2 !== 0) throw new InvalidResumeTokenError(`${what} is not an integer`, data);
    return n / 2;
  };
  const bool = (what: string): boolean => {
    need(1, what);
    const type = bytes[at];
    at++;
    if (type === CTYPE_BOOL_TRUE) return true;
    if (type === CTYPE_BOOL_FALSE) return false;
    throw new InvalidResumeTokenError(`${what} at byte ${at - 1} is not a boolean`, data);
  };
  const version = int('version');
  if (version > 2) throw new InvalidResumeTokenError(`unknown token version ${version}`, data);
  const tokenType = version >= 1 ? int('tokenType') : EVENT_TOKEN;
  const txnOpIndex = int('txnOpIndex');
  const fromInvalidate = version >= 1 ? bool('fromInvalidate') : false;
  return { clusterTime, version, tokenType, txnOpIndex, fromInvalidate };
}

/** Byte order of the KeyStrings, which is the server's order of positions in the stream. */
export function compareResumeTokens(a: string, b: string): number {
  const x = a.toUpperCase();
  const y = b.toUpperCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The event's dedupe id (`Nats-Msg-Id`, `ce-id`): the same on every replay of the change, since a
 * change stream gives an event the same token whenever it is read. Hashed because a token embeds the
 * document key, which may be long.
 */
export function changeEventId(data: string): string {
  return `mongo:${createHash('sha256').update(data.toUpperCase()).digest('hex').slice(0, 40)}`;
}

/** A cluster time as the envelope's `commitLsn`: `<seconds>.<increment>`, both decimal. */
export function formatClusterTime(ts: { t: number; i: number }): string {
  return `${ts.t}.${ts.i}`;
}
