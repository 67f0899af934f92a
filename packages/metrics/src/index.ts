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
export { CellTree, OVERFLOW_LABEL } from './cell-tree.js';
export {
  type BuildInfo,
  type CreateMetricsOptions,
  createMetrics,
  type SluiceMetrics,
} from './create-metrics.js';
export { parseExposition, type Sample, sampleValue } from './exposition.js';
export { HistogramCell, HotHistogram, type HotHistogramOptions } from './hot-histogram.js';
export { metricNamesInPromQL } from './promql-names.js';
