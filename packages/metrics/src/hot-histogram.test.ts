import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotHistogram } from './hot-histogram.js';

const buckets = [0.001, 0.01, 0.1, 1, 10];
const values = [0, 0.001, 0.0010001, 0.005, 0.01, 0.5, 1, 9.99, 10, 11, 1e6];

describe('HotHistogram', () => {
  it("renders exactly the text prom-client's own Histogram renders for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const hot = new HotHistogram({
      name: 'x_seconds',
      help: 'h',
      labelNames: ['kind'],
      buckets,
      registry: ours,
    });
    const reference = new Histogram({
      name: 'x_seconds',
      help: 'h',
      labelNames: ['kind'],
      buckets,
      registers: [theirs],
    });
    for (const v of values) {
      hot.cells.one('change').observe(v);
      reference.observe({ kind: 'change' }, v);
    }
    hot.cells.one('outbox').observe(0.02);
    reference.observe({ kind: 'outbox' }, 0.02);

    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('zeroes its buckets on registry.resetMetrics()', async () => {
    const registry = new Registry();
    const hot = new HotHistogram({ name: 'y_seconds', help: 'h', labelNames: ['kind'], buckets, registry });
    hot.cells.one('change').observe(0.5);
    registry.resetMetrics();
    expect(await registry.metrics()).toContain('y_seconds_count{kind="change"} 0');
  });

  it('rejects buckets that are not strictly ascending, and the reserved le label', () => {
    const registry = new Registry();
    expect(
      () => new HotHistogram({ name: 'z_seconds', help: 'h', labelNames: [], buckets: [1, 1], registry }),
    ).toThrow(/strictly ascending/);
    expect(
      () => new HotHistogram({ name: 'z_seconds', help: 'h', labelNames: ['le'], buckets: [1], registry }),
    ).toThrow(/reserved/);
  });
});
