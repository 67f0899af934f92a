/**
 * Where an event sits in its source's commit order: the commit LSN (`X/Y`, logical replication)
 * or the 64-bit txid (poll mode, decimal) of its transaction, then its seq. Within one source the
 * pairs grow strictly in commit order, so with commit ordering (the stream holds a prefix of that
 * order) an event at or before the stream's last message is already stored: a replay after a
 * crash can be recognised by position, however long ago the stream stored it, where Nats-Msg-Id
 * dedupe only covers the duplicate window.
 */
export interface ReplayPosition {
  readonly kind: 'lsn' | 'txid';
  readonly commit: bigint;
  readonly seq: number;
}

const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const TXID = /^[0-9]{1,20}$/;

export function replayPosition(
  commitLsn: string | undefined,
  seq: string | number | undefined,
): ReplayPosition | undefined {
  if (commitLsn === undefined || seq === undefined) return undefined;
  const n = typeof seq === 'number' ? seq : Number(seq);
  if (!Number.isSafeInteger(n) || n < 0) return undefined;
  const lsn = LSN.exec(commitLsn);
  if (lsn) return { kind: 'lsn', commit: (BigInt(`0x${lsn[1]}`) << 32n) | BigInt(`0x${lsn[2]}`), seq: n };
  if (TXID.test(commitLsn)) return { kind: 'txid', commit: BigInt(commitLsn), seq: n };
  return undefined;
}

/** `a` is at or before `b`; undefined when they cannot be compared (different kinds of source). */
export function atOrBefore(a: ReplayPosition, b: ReplayPosition): boolean | undefined {
  if (a.kind !== b.kind) return undefined;
  if (a.commit !== b.commit) return a.commit < b.commit;
  return a.seq <= b.seq;
}

/**
 * The stream's last message, as far as a restarting relay may skip replayed events against it:
 * only a message this relay's kind of source wrote (same CloudEvents source, a position it can
 * read). Anything else is compared by Nats-Msg-Id only.
 */
export class ReplaySkip {
  readonly #last: ReplayPosition;
  readonly #lastId: string | undefined;
  #done = false;

  constructor(last: ReplayPosition, lastId: string | undefined) {
    this.#last = last;
    this.#lastId = lastId;
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * True for an event already in the stream. The first event past the last stored one ends the
   * skipping for good: from there on every event is new.
   */
  stored(id: string, position: ReplayPosition | undefined): boolean {
    if (this.#done) return false;
    if (id === this.#lastId) {
      this.#done = true;
      return true;
    }
    const before = position === undefined ? undefined : atOrBefore(position, this.#last);
    if (before === true) return true;
    this.#done = true;
    return false;
  }
}
