import { ConfigError, type EventLabels } from '@sluice/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { sluiceMetricNames } from './catalog.js';
import { createMetrics } from './create-metrics.js';
import { parseExposition, sampleValue } from './exposition.js';

const insert: EventLabels = { kind: 'change', schema: 'public', table: 'orders', op: 'insert' };
const update: EventLabels = { kind: 'change', schema: 'public', table: 'orders', op: 'update' };
const outbox: EventLabels = { kind: 'outbox', schema: '', table: 'Order', op: 'outbox' };

function fresh() {
  return createMetrics({
    buildInfo: { version: '1.2.3', commit: 'abc123', node: 'v20.0.0' },
    collectDefault: false,
  });
}

async function scrape(metrics: ReturnType<typeof fresh>) {
  return parseExposition(await metrics.text());
}

describe('createMetrics', () => {
  it('counts received and published events per kind/schema/table/op, from fresh label objects each call', async () => {
    const m = fresh();
    for (let i = 0; i < 3; i++) m.eventReceived({ ...insert });
    m.eventReceived(update);
    m.eventReceived(outbox);
    m.eventPublished({ ...insert }, 0.002);
    m.eventPublished(outbox, 0.004);

    const s = await scrape(m);
    expect(sampleValue(s, 'sluice_events_received_total', { ...insert })).toBe(3);
    expect(sampleValue(s, 'sluice_events_received_total', { ...update })).toBe(1);
    expect(sampleValue(s, 'sluice_events_received_total', { ...outbox })).toBe(1);
    expect(sampleValue(s, 'sluice_events_published_total', { ...insert })).toBe(1);
    expect(sampleValue(s, 'sluice_events_published_total', { ...outbox })).toBe(1);
    // Received but not yet published: a zero series, so rate() has somewhere to start.
    expect(sampleValue(s, 'sluice_events_published_total', { ...update })).toBe(0);
  });

  it('keeps counting across scrapes (counters are totals, not deltas since the last scrape)', async () => {
    const m = fresh();
    m.eventReceived(insert);
    await m.text();
    m.eventReceived(insert);
    expect(sampleValue(await scrape(m), 'sluice_events_received_total', { ...insert })).toBe(2);
  });

  it('observes publish duration and end-to-end lag per kind into cumulative buckets', async () => {
    const m = fresh();
    m.eventPublished(insert, 0.003);
    m.eventPublished(update, 0.2);
    m.endToEndLag(insert, 45);
    m.endToEndLag(outbox, 90);

    const s = await scrape(m);
    const publish = 'sluice_publish_duration_seconds';
    expect(sampleValue(s, `${publish}_bucket`, { kind: 'change', le: '0.0025' })).toBe(0);
    expect(sampleValue(s, `${publish}_bucket`, { kind: 'change', le: '0.005' })).toBe(1);
    expect(sampleValue(s, `${publish}_bucket`, { kind: 'change', le: '0.25' })).toBe(2);
    expect(sampleValue(s, `${publish}_bucket`, { kind: 'change', le: '+Inf' })).toBe(2);
    expect(sampleValue(s, `${publish}_count`, { kind: 'change' })).toBe(2);
    expect(sampleValue(s, `${publish}_sum`, { kind: 'change' })).toBeCloseTo(0.203, 9);

    const lag = 'sluice_end_to_end_lag_seconds';
    expect(sampleValue(s, `${lag}_bucket`, { kind: 'change', le: '30' })).toBe(0);
    expect(sampleValue(s, `${lag}_bucket`, { kind: 'change', le: '60' })).toBe(1);
    expect(sampleValue(s, `${lag}_bucket`, { kind: 'outbox', le: '60' })).toBe(0);
    expect(sampleValue(s, `${lag}_bucket`, { kind: 'outbox', le: '120' })).toBe(1);
  });

  it('does not observe end-to-end lag for snapshot reads, whose commit time is the snapshot start', async () => {
    const m = fresh();
    m.endToEndLag({ ...insert, op: 'read' }, 7200);
    expect(
      sampleValue(await scrape(m), 'sluice_end_to_end_lag_seconds_count', { kind: 'change' }),
    ).toBeUndefined();
  });

  it('counts negative lag (clock skew) as zero and ignores NaN, so _sum stays a number', async () => {
    const m = fresh();
    m.endToEndLag(insert, -0.5);
    m.endToEndLag(insert, Number.NaN);
    const s = await scrape(m);
    expect(sampleValue(s, 'sluice_end_to_end_lag_seconds_bucket', { kind: 'change', le: '0.001' })).toBe(1);
    expect(sampleValue(s, 'sluice_end_to_end_lag_seconds_count', { kind: 'change' })).toBe(1);
    expect(sampleValue(s, 'sluice_end_to_end_lag_seconds_sum', { kind: 'change' })).toBe(0);
  });

  it('exports the confirmed and received LSNs as WAL byte positions, and omits them until known', async () => {
    const m = fresh();
    let s = await scrape(m);
    expect(sampleValue(s, 'sluice_confirmed_flush_lsn_bytes')).toBeUndefined();
    expect(sampleValue(s, 'sluice_received_lsn_bytes')).toBeUndefined();

    m.confirmedLsn(0x1_6b3_7480n); // 1/6B37480
    m.receivedLsn(0x1_6b3_7500n);
    s = await scrape(m);
    expect(sampleValue(s, 'sluice_confirmed_flush_lsn_bytes')).toBe(0x1_6b3_7480);
    expect(sampleValue(s, 'sluice_received_lsn_bytes')).toBe(0x1_6b3_7500);
  });

  it('exports the slot wal_status one-hot: 1 for the current status, 0 for the others', async () => {
    const m = fresh();
    const stats = { slot: 'sluice', retainedWalBytes: 4096, active: true, spillBytes: 0, spillCount: 0 };
    m.slotStats({ ...stats, walStatus: 'reserved' });
    m.slotStats({ ...stats, walStatus: 'unreserved' });

    const s = await scrape(m);
    const status = (value: string) =>
      sampleValue(s, 'sluice_replication_slot_wal_status', { slot: 'sluice', status: value });
    expect([status('reserved'), status('extended'), status('unreserved'), status('lost')]).toEqual([
      0, 0, 1, 0,
    ]);
    expect(sampleValue(s, 'sluice_replication_slot_retained_wal_bytes', { slot: 'sluice' })).toBe(4096);
    expect(sampleValue(s, 'sluice_replication_slot_active', { slot: 'sluice' })).toBe(1);
  });

  it('drops retained WAL for a lost slot (Postgres reports NULL) instead of exporting a stale number', async () => {
    const m = fresh();
    const stats = { slot: 'sluice', active: false, spillBytes: null, spillCount: null };
    m.slotStats({ ...stats, retainedWalBytes: 10_000, walStatus: 'unreserved' });
    m.slotStats({ ...stats, retainedWalBytes: null, walStatus: 'lost' });

    const s = await scrape(m);
    expect(sampleValue(s, 'sluice_replication_slot_retained_wal_bytes', { slot: 'sluice' })).toBeUndefined();
    expect(sampleValue(s, 'sluice_replication_slot_wal_status', { slot: 'sluice', status: 'lost' })).toBe(1);
    expect(sampleValue(s, 'sluice_replication_slot_active', { slot: 'sluice' })).toBe(0);
  });

  it("mirrors the server's cumulative spill counters as counters, including a reset", async () => {
    const m = fresh();
    const stats = { slot: 'sluice', retainedWalBytes: 0, walStatus: 'reserved', active: true };
    m.slotStats({ ...stats, spillBytes: 5_000_000, spillCount: 3 });
    let s = await scrape(m);
    expect(sampleValue(s, 'sluice_replication_slot_spill_bytes_total', { slot: 'sluice' })).toBe(5_000_000);
    expect(sampleValue(s, 'sluice_replication_slot_spill_count_total', { slot: 'sluice' })).toBe(3);

    m.slotStats({ ...stats, spillBytes: 100, spillCount: 1 }); // pg_stat_reset_replication_slot
    s = await scrape(m);
    expect(sampleValue(s, 'sluice_replication_slot_spill_bytes_total', { slot: 'sluice' })).toBe(100);
  });

  it('counts retries, errors and reconnects by reason and component', async () => {
    const m = fresh();
    m.publishRetry('timeout');
    m.publishRetry('timeout');
    m.publishRetry('no_responders');
    m.publishError('timeout');
    m.reconnect('postgres');
    m.reconnect('nats');
    m.reconnect('nats');

    const s = await scrape(m);
    expect(sampleValue(s, 'sluice_publish_retries_total', { reason: 'timeout' })).toBe(2);
    expect(sampleValue(s, 'sluice_publish_retries_total', { reason: 'no_responders' })).toBe(1);
    expect(sampleValue(s, 'sluice_publish_errors_total', { reason: 'timeout' })).toBe(1);
    expect(sampleValue(s, 'sluice_reconnects_total', { component: 'postgres' })).toBe(1);
    expect(sampleValue(s, 'sluice_reconnects_total', { component: 'nats' })).toBe(2);
  });

  it('adds snapshot rows per call and clamps the progress ratio to 0..1', async () => {
    const m = fresh();
    m.snapshotRows('public', 'orders', 1000);
    m.snapshotRows('public', 'orders', 500);
    m.snapshotProgress('public', 'orders', 0.25);
    m.snapshotProgress('public', 'items', 1.0000001);

    const s = await scrape(m);
    expect(sampleValue(s, 'sluice_snapshot_rows_total', { schema: 'public', table: 'orders' })).toBe(1500);
    expect(sampleValue(s, 'sluice_snapshot_progress_ratio', { schema: 'public', table: 'orders' })).toBe(
      0.25,
    );
    expect(sampleValue(s, 'sluice_snapshot_progress_ratio', { schema: 'public', table: 'items' })).toBe(1);
  });

  it('exports the estimate of the table being read and the backfill requests by state', async () => {
    const m = fresh();
    m.snapshotEstimate('public', 'orders', 50_000);
    m.snapshotEstimate('public', 'orders', 52_000);
    m.backfillRequests(2, 1);

    const s = await scrape(m);
    expect(sampleValue(s, 'sluice_snapshot_rows_estimate', { schema: 'public', table: 'orders' })).toBe(
      52_000,
    );
    expect(sampleValue(s, 'sluice_backfill_requests', { state: 'pending' })).toBe(2);
    expect(sampleValue(s, 'sluice_backfill_requests', { state: 'running' })).toBe(1);
  });

  it('exports in-flight gauges, outbox backlog, readiness, build info and the last acknowledged event time', async () => {
    const m = fresh();
    let s = await scrape(m);
    expect(sampleValue(s, 'sluice_ready')).toBe(0);
    expect(sampleValue(s, 'sluice_last_event_timestamp_seconds')).toBeUndefined();
    expect(sampleValue(s, 'sluice_outbox_backlog_rows')).toBeUndefined();

    const before = Date.now() / 1000;
    m.eventPublished(insert, 0.001);
    m.inFlight(12, 3456);
    m.outboxBacklog(40);
    m.setReady(true);

    s = await scrape(m);
    expect(sampleValue(s, 'sluice_events_in_flight')).toBe(12);
    expect(sampleValue(s, 'sluice_bytes_in_flight')).toBe(3456);
    expect(sampleValue(s, 'sluice_outbox_backlog_rows')).toBe(40);
    expect(sampleValue(s, 'sluice_ready')).toBe(1);
    expect(sampleValue(s, 'sluice_build_info', { version: '1.2.3', commit: 'abc123', node: 'v20.0.0' })).toBe(
      1,
    );
    expect(sampleValue(s, 'sluice_last_event_timestamp_seconds')).toBeGreaterThanOrEqual(Math.floor(before));
  });

  it('folds label sets beyond maxEventLabelSets into one _other series instead of growing without bound', async () => {
    const m = createMetrics({ buildInfo: { version: '1' }, collectDefault: false, maxEventLabelSets: 2 });
    for (const table of ['a', 'b', 'c', 'd']) m.eventReceived({ ...insert, table });

    const s = await scrape(m);
    const series = s.filter((x) => x.name === 'sluice_events_received_total');
    expect(series.map((x) => x.labels['table'])).toEqual(['a', 'b', '_other']);
    expect(sampleValue(s, 'sluice_events_received_total', { table: '_other' })).toBe(2);
  });

  it('caps outbox aggregate types at maxAggregateTypes: later ones count under table="_other" of kind outbox', async () => {
    const m = createMetrics({ buildInfo: { version: '1' }, collectDefault: false, maxAggregateTypes: 2 });
    for (const type of ['Order', 'Invoice', 'tenant-1', 'tenant-2', 'Order', 'tenant-3']) {
      m.eventReceived({ ...outbox, table: type });
      m.eventPublished({ ...outbox, table: type }, 0.001);
    }
    m.eventReceived(insert);

    const s = await scrape(m);
    const outboxSeries = s.filter(
      (x) => x.name === 'sluice_events_received_total' && x.labels['kind'] === 'outbox',
    );
    expect(outboxSeries.map((x) => [x.labels['table'], x.value])).toEqual([
      ['Order', 2],
      ['Invoice', 1],
      ['_other', 3],
    ]);
    expect(sampleValue(s, 'sluice_events_published_total', { ...outbox, table: '_other' })).toBe(3);
    // Row changes have their own cap: the aggregate types never crowd out a table.
    expect(sampleValue(s, 'sluice_events_received_total', { ...insert })).toBe(1);
  });

  it('caps tables at maxTables across change events and snapshot metrics: later tables count under schema and table "_other"', async () => {
    const m = createMetrics({ buildInfo: { version: '1' }, collectDefault: false, maxTables: 2 });
    m.eventReceived({ ...insert, table: 'a' });
    m.eventReceived({ ...update, table: 'a' });
    m.eventReceived({ ...insert, table: 'b' });
    m.eventReceived({ ...insert, table: 'c' });
    m.eventReceived({ ...update, table: 'd' });
    m.snapshotRows('public', 'e', 10);
    m.snapshotRows('public', 'a', 5);
    m.snapshotProgress('public', 'e', 0.5);
    m.snapshotProgress('public', 'b', 0.25);

    const s = await scrape(m);
    const received = s.filter((x) => x.name === 'sluice_events_received_total');
    expect(received.map((x) => [x.labels['schema'], x.labels['table'], x.labels['op'], x.value])).toEqual([
      ['public', 'a', 'insert', 1],
      ['public', 'a', 'update', 1],
      ['public', 'b', 'insert', 1],
      ['_other', '_other', 'insert', 1],
      ['_other', '_other', 'update', 1],
    ]);
    expect(sampleValue(s, 'sluice_snapshot_rows_total', { schema: '_other', table: '_other' })).toBe(10);
    expect(sampleValue(s, 'sluice_snapshot_rows_total', { schema: 'public', table: 'a' })).toBe(5);
    // A fraction cannot be summed: a table past the cap has no progress series.
    expect(
      s.filter((x) => x.name === 'sluice_snapshot_progress_ratio').map((x) => x.labels['table']),
    ).toEqual(['b']);
  });

  it('leaves out the Node default gauges named like counters, whose per-type siblings sum to them', () => {
    const names = createMetrics({ buildInfo: { version: '1' } }).metricNames();
    expect(names).not.toContain('nodejs_active_handles_total');
    expect(names).not.toContain('nodejs_active_requests_total');
    expect(names).not.toContain('nodejs_active_resources_total');
    expect(names).toContain('nodejs_active_handles');
  });

  it('rejects a cap below 1, naming the option', () => {
    expect(() => createMetrics({ buildInfo: { version: '1' }, maxAggregateTypes: 0 })).toThrow(
      /metrics\.maxAggregateTypes/,
    );
  });

  it('registers on its own registry, so two instances in one process do not collide', async () => {
    const a = createMetrics({ buildInfo: { version: '1' } });
    const b = createMetrics({ buildInfo: { version: '1' } });
    a.eventReceived(insert);
    expect(a.registry).not.toBe(b.registry);
    expect(sampleValue(await scrape(b), 'sluice_events_received_total', { ...insert })).toBeUndefined();
  });

  it('lists every catalog metric and the Node defaults in metricNames()', () => {
    const names = createMetrics({ buildInfo: { version: '1' } }).metricNames();
    expect(names).toEqual(expect.arrayContaining(sluiceMetricNames()));
    expect(names).toEqual(
      expect.arrayContaining([
        'process_resident_memory_bytes',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
      ]),
    );
  });

  it('uses a caller registry and prefix when given', async () => {
    const registry = new Registry();
    const m = createMetrics({
      registry,
      prefix: 'relay_',
      buildInfo: { version: '1' },
      collectDefault: false,
    });
    m.reconnect('nats');
    expect(m.registry).toBe(registry);
    expect(sampleValue(parseExposition(await registry.metrics()), 'relay_reconnects_total')).toBe(1);
  });

  it('rejects a prefix that cannot start a metric name, naming the setting', () => {
    expect(() => createMetrics({ prefix: '9lives-', buildInfo: { version: '1' } })).toThrow(ConfigError);
    expect(() => createMetrics({ prefix: '9lives-', buildInfo: { version: '1' } })).toThrow(
      /metrics\.prefix/,
    );
  });
});
