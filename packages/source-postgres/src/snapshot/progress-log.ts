import type { Logger } from '@sluice/core';

/** Where one table's read stands, as logs, metrics and `sluice backfill --list` show it. */
export interface ProgressFigures {
  rowsRead: number;
  rowsEstimate: number | null;
  /** 0–100, whole; null without an estimate. Never 100 before the table is done: estimates run short. */
  percent: number | null;
  /** Rows per second since this relay began (or resumed) the table. */
  rowsPerSecond: number;
}

export function progressFigures(
  rowsRead: number,
  rowsEstimate: number | null,
  done: boolean,
  rowsPerSecond: number,
): ProgressFigures {
  let percent: number | null = null;
  if (done) percent = 100;
  else if (rowsEstimate !== null && rowsEstimate > 0) {
    percent = Math.min(99, Math.floor((rowsRead / rowsEstimate) * 100));
  }
  return { rowsRead, rowsEstimate, percent, rowsPerSecond: Math.round(rowsPerSecond) };
}

/** `12000 of ~50000 rows (24%), 3100 rows/s` */
export function describeProgress(p: ProgressFigures): string {
  const total = p.rowsEstimate === null ? '' : ` of ~${p.rowsEstimate}`;
  const percent = p.percent === null ? '' : ` (${p.percent}%)`;
  return `${p.rowsRead}${total} rows${percent}, ${p.rowsPerSecond} rows/s`;
}

/**
 * One table's progress while it is read: counts rows and logs where it stands at most once per
 * `intervalMs`, however small the chunks, so a long read is visible without flooding the log.
 */
export class TableProgress {
  readonly #logger: Logger;
  readonly #label: string;
  readonly #fields: Record<string, unknown>;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #rowsAtStart: number;
  #lastLogAt: number;
  rowsRead: number;
  rowsEstimate: number | null;

  constructor(options: {
    logger: Logger;
    /** `snapshot of public.orders`, `backfill 3 of public.orders` */
    label: string;
    /** Fields every line carries (table, snapshot id, backfill id). */
    fields: Record<string, unknown>;
    rowsRead: number;
    rowsEstimate: number | null;
    intervalMs: number;
    now?: () => number;
  }) {
    this.#logger = options.logger;
    this.#label = options.label;
    this.#fields = options.fields;
    this.#intervalMs = options.intervalMs;
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
    this.#lastLogAt = this.#startedAt;
    this.rowsRead = options.rowsRead;
    this.#rowsAtStart = options.rowsRead;
    this.rowsEstimate = options.rowsEstimate;
  }

  figures(done = false): ProgressFigures {
    const seconds = (this.#now() - this.#startedAt) / 1000;
    const rate = seconds > 0 ? (this.rowsRead - this.#rowsAtStart) / seconds : 0;
    return progressFigures(this.rowsRead, this.rowsEstimate, done, rate);
  }

  /** Counts acknowledged reads; logs if the last line is `intervalMs` old. */
  add(rows: number): void {
    this.rowsRead += rows;
    const now = this.#now();
    if (now - this.#lastLogAt < this.#intervalMs) return;
    this.#lastLogAt = now;
    const figures = this.figures();
    this.#logger.info({ ...this.#fields, ...figures }, `${this.#label}: ${describeProgress(figures)}`);
  }

  /** Milliseconds since the read began or resumed. */
  elapsedMs(): number {
    return this.#now() - this.#startedAt;
  }
}
