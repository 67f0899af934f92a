import type { Logger } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { describeProgress, progressFigures, TableProgress } from './progress-log.js';

function recorder() {
  const lines: { obj: object; msg: string }[] = [];
  const logger: Logger = {
    debug() {},
    info: (obj, msg = '') => lines.push({ obj, msg }),
    warn() {},
    error() {},
    child: () => logger,
  };
  return { lines, logger };
}

describe('progressFigures', () => {
  it('gives whole percents, never 100 before the end however short the estimate', () => {
    expect(progressFigures(12_000, 50_000, false, 3100.4)).toEqual({
      rowsRead: 12_000,
      rowsEstimate: 50_000,
      percent: 24,
      rowsPerSecond: 3100,
    });
    expect(progressFigures(60_000, 50_000, false, 1).percent).toBe(99);
    expect(progressFigures(60_000, 50_000, true, 1).percent).toBe(100);
  });

  it('has no percent without an estimate, or with an estimate of 0', () => {
    expect(progressFigures(10, null, false, 0).percent).toBeNull();
    expect(progressFigures(10, 0, false, 0).percent).toBeNull();
    expect(progressFigures(0, 0, true, 0).percent).toBe(100);
  });

  it('reads as a sentence', () => {
    expect(describeProgress(progressFigures(12_000, 50_000, false, 3100))).toBe(
      '12000 of ~50000 rows (24%), 3100 rows/s',
    );
    expect(describeProgress(progressFigures(7, null, false, 2))).toBe('7 rows, 2 rows/s');
  });
});

describe('TableProgress', () => {
  it('logs at most once per interval, with the rate of this run only', () => {
    const { lines, logger } = recorder();
    let now = 1_000_000;
    const progress = new TableProgress({
      logger,
      label: 'backfill 3 of public.orders',
      fields: { table: 'public.orders', backfill: 3 },
      rowsRead: 5000,
      rowsEstimate: 50_000,
      intervalMs: 5000,
      now: () => now,
    });
    for (let i = 0; i < 20; i++) {
      now += 1000;
      progress.add(1000);
    }
    // 20 s of chunks every second: a line at 5, 10, 15 and 20 s.
    expect(lines).toHaveLength(4);
    expect(lines[0]).toEqual({
      obj: {
        table: 'public.orders',
        backfill: 3,
        rowsRead: 10_000,
        rowsEstimate: 50_000,
        percent: 20,
        rowsPerSecond: 1000,
      },
      msg: 'backfill 3 of public.orders: 10000 of ~50000 rows (20%), 1000 rows/s',
    });
    expect(progress.figures(true)).toEqual({
      rowsRead: 25_000,
      rowsEstimate: 50_000,
      percent: 100,
      rowsPerSecond: 1000,
    });
  });
});
