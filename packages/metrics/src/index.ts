export {
  END_TO_END_LAG_BUCKETS,
  METRICS,
  type MetricKey,
  type MetricSpec,
  type MetricType,
  PUBLISH_DURATION_BUCKETS,
  sluiceMetricNames,
  WAL_STATUSES,
} from './catalog.js';
export { type Canonicalize, CellTree, OVERFLOW_LABEL, ValueCap } from './cell-tree.js';
export {
  type BuildInfo,
  type CreateMetricsOptions,
  createMetrics,
  DEFAULT_MAX_AGGREGATE_TYPES,
  DEFAULT_MAX_EVENT_LABEL_SETS,
  DEFAULT_MAX_TABLES,
  type SluiceMetrics,
} from './create-metrics.js';
export { parseExposition, type Sample, sampleValue } from './exposition.js';
export { HistogramCell, HotHistogram, type HotHistogramOptions } from './hot-histogram.js';
export { metricNamesInPromQL } from './promql-names.js';
