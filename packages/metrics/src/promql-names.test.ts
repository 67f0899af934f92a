import { describe, expect, it } from 'vitest';
import { metricNamesInPromQL } from './promql-names.js';

describe('metricNamesInPromQL', () => {
  it('finds sluice, process and nodejs families and strips histogram series suffixes', () => {
    const expr =
      'histogram_quantile(0.99, sum by (le) (rate(sluice_end_to_end_lag_seconds_bucket{job="$job"}[5m])))' +
      ' / process_resident_memory_bytes + nodejs_gc_duration_seconds_count - sluice_ready';
    expect(metricNamesInPromQL(expr)).toEqual([
      'nodejs_gc_duration_seconds',
      'process_resident_memory_bytes',
      'sluice_end_to_end_lag_seconds',
      'sluice_ready',
    ]);
  });

  it('ignores names inside label values', () => {
    expect(metricNamesInPromQL('up{job="sluice_relay"} == 0')).toEqual([]);
  });
});
