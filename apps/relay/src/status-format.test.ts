import { describe, expect, it } from 'vitest';
import { bytes, formatStatus, type StatusReport } from './status-format.js';

const report: StatusReport = {
  database: 'postgres://app@db:5432/app',
  slot: {
    name: 'sluice',
    exists: true,
    active: true,
    holder: 'pid 4242, application_name "sluice", from 10.0.0.7',
    confirmedFlushLsn: '0/16B37A0',
    restartLsn: '0/16B3000',
    currentLsn: '0/16B3800',
    lagBytes: 96,
    retainedBytes: 2048,
    walStatus: 'reserved',
  },
  stream: {
    name: 'SLUICE',
    server: 'nats://nats:4222',
    exists: true,
    messages: 1200,
    bytes: 1_500_000,
    firstSeq: 1,
    lastSeq: 1200,
    lastTime: '2026-12-04T20:00:00Z',
    consumers: [{ name: 'billing', pending: 3, ackPending: 1 }],
  },
  backfills: {
    setUp: true,
    pending: 1,
    running: 1,
    active: [
      {
        id: 3,
        state: 'running',
        tables: [{ table: 'public.orders', state: 'running', progress: '120 of ~500 rows (24%), 40 rows/s' }],
      },
    ],
  },
  deadLetters: { setUp: true, open: 2, byCode: { too_large: 2 }, parkedEvents: 5, oldestAgeSeconds: 3700 },
};

describe('formatStatus', () => {
  it('writes one section per part, numbers with units', () => {
    expect(formatStatus(report)).toBe(
      [
        'database      postgres://app@db:5432/app',
        'slot          "sluice" active, held by pid 4242, application_name "sluice", from 10.0.0.7',
        '  confirmed   0/16B37A0 (confirmed_flush_lsn; current WAL 0/16B3800)',
        '  lag         96 B of WAL not yet confirmed',
        '  retained    2.0 kB of WAL kept for the slot (restart_lsn 0/16B3000, wal_status reserved)',
        'stream        "SLUICE" on nats://nats:4222',
        '  messages    1200 (1.5 MB), seq 1..1200, last at 2026-12-04T20:00:00Z',
        '  consumers   billing (3 pending, 1 unacknowledged)',
        'backfills     1 running, 1 pending',
        '  #3 public.orders  running  120 of ~500 rows (24%), 40 rows/s',
        'dead letters  2 open (too_large 2), oldest 62 min; 5 events parked behind them (sluice dlq list)',
        '',
      ].join('\n'),
    );
  });

  it('says what is not set up or not there yet', () => {
    const text = formatStatus({
      ...report,
      slot: { name: 'sluice', exists: false, currentLsn: '0/1000' },
      stream: { name: 'SLUICE', server: 'nats://nats:4222', error: 'CONNECTION_REFUSED' },
      backfills: { setUp: false },
      deadLetters: { setUp: false },
    });
    expect(text).toContain('slot          "sluice" does not exist yet');
    expect(text).toContain('stream        "SLUICE" on nats://nats:4222: CONNECTION_REFUSED');
    expect(text).toContain('backfills     not set up');
    expect(text).toContain('dead letters  not set up');
  });
});

describe('bytes', () => {
  it('counts in powers of 1000', () => {
    expect([0, 999, 1000, 1_500_000, 2_100_000_000].map(bytes)).toEqual([
      '0 B',
      '999 B',
      '1.0 kB',
      '1.5 MB',
      '2.1 GB',
    ]);
    expect(bytes(null)).toBe('-');
  });
});
