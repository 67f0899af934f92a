import { encodeStandbyStatusUpdate, pgNow } from '@sluice/pgoutput';

export interface StandbyStatusOptions {
  /** Writes one encoded status update to the replication connection. */
  send(payload: Uint8Array): void;
  /** The newest LSN received from the server. */
  written(): bigint;
  /** The newest cursor the pipeline acknowledged: what Postgres may consider flushed. */
  flushed(): bigint;
  /** Called with the flushed LSN each time a status update reports a newer one. */
  onConfirmed(lsn: bigint): void;
  intervalMs: number;
  /** Least time between updates triggered by acknowledgements (PERF-NOTES finding 3). */
  minGapMs?: number;
}

/**
 * Standby status updates for one replication connection. `written` is the newest LSN received,
 * `flushed` = `applied` the newest acknowledged cursor and nothing else: Postgres keeps the WAL
 * from there, so it must never run ahead of what is durably delivered.
 */
export class StandbyStatus {
  private lastSentAt = 0;
  private lastFlushed = -1n;
  private soon: NodeJS.Timeout | undefined;
  private readonly every: NodeJS.Timeout;
  private readonly minGapMs: number;
  private stopped = false;

  constructor(private readonly options: StandbyStatusOptions) {
    this.minGapMs = options.minGapMs ?? 500;
    // Also what keeps wal_sender_timeout from firing while the socket is paused for backpressure.
    this.every = setInterval(() => this.sendNow(), options.intervalMs);
  }

  /** The acknowledged cursor moved: report it soon, at most once per `minGapMs`. */
  acknowledged(): void {
    if (this.stopped || this.soon) return;
    const wait = Math.max(0, this.lastSentAt + this.minGapMs - Date.now());
    this.soon = setTimeout(() => {
      this.soon = undefined;
      if (this.options.flushed() !== this.lastFlushed) this.sendNow();
    }, wait);
  }

  sendNow(replyRequested = false): void {
    if (this.stopped) return;
    const flushed = this.options.flushed();
    const received = this.options.written();
    const written = received > flushed ? received : flushed;
    this.options.send(
      encodeStandbyStatusUpdate({ written, flushed, applied: flushed, clientTime: pgNow(), replyRequested }),
    );
    this.lastSentAt = Date.now();
    if (flushed > this.lastFlushed) {
      this.lastFlushed = flushed;
      if (flushed > 0n) this.options.onConfirmed(flushed);
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.every);
    clearTimeout(this.soon);
  }
}
