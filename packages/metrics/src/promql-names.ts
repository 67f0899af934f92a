/** Node default metrics keep their standard, unprefixed names. */
const NAME = /\b(?:sluice|process|nodejs)_[a-zA-Z0-9_]*[a-zA-Z0-9]/g;
const SERIES_SUFFIX = /_(?:bucket|sum|count)$/;
/** Label values such as job="sluice_relay" are not metric names. */
const STRING = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;

/**
 * The metric family names a PromQL expression reads: `sluice_*`, `process_*` and `nodejs_*`
 * identifiers, with a histogram's `_bucket`/`_sum`/`_count` suffix removed. For checking that
 * dashboards and alert rules reference only metrics a relay exports. A family whose own name
 * ends in `_count` (`sluice_replication_slot_spill_count_total` does not) would be misread; the
 * catalog has none.
 */
export function metricNamesInPromQL(expr: string): string[] {
  const names = new Set<string>();
  for (const match of expr.replace(STRING, '""').matchAll(NAME))
    names.add(match[0].replace(SERIES_SUFFIX, ''));
  return [...names].sort();
}
