import { InvalidLsnError } from './errors.js';

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const MAX_LSN = 0xffff_ffff_ffff_ffffn;

/** `'0/16B3748'` → `23803720n`. Accepts either case; throws InvalidLsnError otherwise. */
export function parseLsn(text: string): bigint {
  const match = typeof text === 'string' ? LSN_TEXT.exec(text) : null;
  if (match === null) throw new InvalidLsnError(text);
  return (BigInt(Number.parseInt(match[1]!, 16)) << 32n) | BigInt(Number.parseInt(match[2]!, 16));
}

/** `23803720n` → `'0/16B3748'`: upper-case hex halves without leading zeros, as Postgres prints pg_lsn. */
export function formatLsn(lsn: bigint): string {
  if (typeof lsn !== 'bigint' || lsn < 0n || lsn > MAX_LSN) throw new InvalidLsnError(lsn);
  // One conversion, then a cut: every event's LSN goes through here, and shifting and masking a
  // bigint allocates two more.
  const hex = lsn.toString(16).toUpperCase();
  const n = hex.length;
  if (n <= 8) return `0/${hex}`;
  let low = n - 8;
  while (low < n - 1 && hex.charCodeAt(low) === 0x30) low++;
  return `${hex.slice(0, n - 8)}/${hex.slice(low)}`;
}
