import { type Metric, type Registry, validateMetricName } from 'prom-client';
import { CellTree } from './cell-tree.js';

/** One label set's buckets. `observe` is a binary search and three additions. */
export class HistogramCell {
  /** Observations per bucket, not cumulative; the last slot is the +Inf bucket. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    // NaN or Infinity would poison _sum for the life of the process; a negative duration can
    // only come from clock skew between the database host and the relay, and reads as "no lag".
    if (!Number.isFinite(value)) return;
    const v = Math.max(value, 0);
    const bounds = this.bounds;
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v <= bounds[mid]!) hi = mid;
      else lo = mid + 1;
    }
    this.counts[lo]!++;
    this.sum += v;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** What prom-client's registry reads from a metric: the shape `Histogram#get()` returns. */
export interface ExportedValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export interface ExportedFamily {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: ExportedValue[];
}

export interface HotHistogramOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  /** Upper bounds, ascending, finite; +Inf is implied. */
  buckets: readonly number[];
  registry: Registry;
  /** Cap on label sets; see CellTree. */
  maxCells?: number;
}

/**
 * A histogram whose observations cost nanoseconds (see CellTree for why), exposed through a
 * prom-client Registry. The registry only calls `get()` (and `reset()`), so the object provides
 * what prom-client's own Histogram provides there; the Prometheus text and the JSON used by
 * cluster aggregation come out the same.
 */
export class HotHistogram {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly name: string;
  readonly help: string;
  readonly cells: CellTree<HistogramCell>;
  readonly #bounds: Float64Array;

  constructor(options: HotHistogramOptions) {
    if (!validateMetricName(options.name)) {
      throw new RangeError(
        `Histogram name ${JSON.stringify(options.name)} is not a valid Prometheus metric name`,
      );
    }
    if (options.labelNames.includes('le'))
      throw new RangeError(`Histogram ${options.name}: 'le' is reserved`);
    const b = options.buckets;
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= (b[i - 1] as number)))) {
      throw new RangeError(
        `Histogram ${options.name}: buckets must be finite and strictly ascending, got [${b.join(', ')}]`,
      );
    }
    this.name = options.name;
    this.help = options.help;
    this.#bounds = Float64Array.from(b);
    const bounds = this.#bounds;
    this.cells = new CellTree(
      options.labelNames,
      options.maxCells ?? 1000,
      (labels) => new HistogramCell(labels, bounds),
    );
    // Not a prom-client class, but it has everything the registry uses: name, type, help,
    // aggregator, get(), reset().
    options.registry.registerMetric(this as unknown as Metric<string>);
  }

  async get(): Promise<ExportedFamily> {
    const values: ExportedValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const cell of this.cells.cells()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += cell.counts[i]!;
        values.push({
          metricName: bucketName,
          labels: { le: this.#bounds[i]!, ...cell.labels },
          value: cumulative,
        });
      }
      values.push(
        { metricName: bucketName, labels: { le: '+Inf', ...cell.labels }, value: cell.count },
        { metricName: `${this.name}_sum`, labels: { ...cell.labels }, value: cell.sum },
        { metricName: `${this.name}_count`, labels: { ...cell.labels }, value: cell.count },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const cell of this.cells.cells()) cell.reset();
  }
}
