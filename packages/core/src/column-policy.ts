/**
 * Column filters and masks per captured table, applied to every row change before it leaves the
 * relay (after, before, the changed/unchanged lists; snapshot and backfill reads alike). Key
 * columns are never filtered: events are keyed, ordered and deduplicated by them.
 *
 * Written as `table: rule, rule; table: rule`, names as in SQL:
 * - `-column`: drop the column (a deny-list: every other column passes);
 * - `column`: keep it (an allow-list: only listed columns and the key pass);
 * - `column=hash`: keep it, its value replaced by HMAC-SHA256(key, value) in hex;
 * - `column=redact`: keep it, its value replaced by `"***"`.
 * A table's rules are an allow-list or a deny-list, not both; masks go with either.
 */
import type { ChangeEvent, RelayEvent } from './events.js';
import { encodeJson, type JsonValue, type Row } from './json.js';
import {
  formatIdentifier,
  formatTableName,
  indexOutsideQuotes,
  parseIdentifier,
  parseTableName,
  type QualifiedName,
  quoteEntry,
  splitOutsideQuotes,
  TableNameError,
  tableNameFromConfig,
} from './table-names.js';

export type ColumnMask = 'hash' | 'redact';

/** What a redacted value becomes. */
export const REDACTED = '***';

/** One table's rules as written (not yet checked against the table). */
export interface TableColumnRules {
  table: QualifiedName;
  /** allow: only `keep` columns (and the key) pass; deny: every column but `drop` passes. */
  mode: 'allow' | 'deny';
  keep: string[];
  drop: string[];
  mask: Map<string, ColumnMask>;
}

/** A rule that cannot be read, quoting it as written. */
export class ColumnRuleError extends Error {
  override name = 'ColumnRuleError';
}

const MASKS: readonly string[] = ['hash', 'redact'];

function readRule(rule: string, table: string, into: TableColumnRules, modes: Set<string>): void {
  let text = rule.trim();
  const drop = text.startsWith('-');
  if (drop) text = text.slice(1).trim();
  // The mask follows the last `=` outside quotes: a quoted name may hold one.
  let mask: string | undefined;
  const eq = lastIndexOutsideQuotes(text, '=');
  if (eq !== -1) {
    mask = text
      .slice(eq + 1)
      .trim()
      .toLowerCase();
    text = text.slice(0, eq).trim();
    if (!MASKS.includes(mask)) {
      throw new ColumnRuleError(
        `${quoteEntry(rule.trim())} of ${table}: unknown mask "${mask}"; write column=hash or column=redact`,
      );
    }
    if (drop) {
      throw new ColumnRuleError(
        `${quoteEntry(rule.trim())} of ${table}: a dropped column has no value to mask; write -column or column=${mask}`,
      );
    }
  }
  let column: string;
  try {
    column = parseIdentifier(text);
  } catch (err) {
    if (err instanceof TableNameError) throw new ColumnRuleError(`column of ${table}: ${err.message}`);
    throw err;
  }
  if (into.keep.includes(column) || into.drop.includes(column) || into.mask.has(column)) {
    throw new ColumnRuleError(
      `${table} names column ${formatIdentifier(column)} twice; give each column once`,
    );
  }
  if (drop) {
    into.drop.push(column);
    modes.add('deny');
  } else if (mask !== undefined) {
    into.mask.set(column, mask as ColumnMask);
  } else {
    into.keep.push(column);
    modes.add('allow');
  }
}

function lastIndexOutsideQuotes(text: string, char: string): number {
  let found = -1;
  let from = 0;
  for (;;) {
    const i = indexOutsideQuotes(text.slice(from), char);
    if (i === -1) return found;
    found = from + i;
    from = found + 1;
  }
}

function tableRules(table: QualifiedName, rules: readonly string[]): TableColumnRules {
  const name = formatTableName(table);
  const out: TableColumnRules = { table, mode: 'deny', keep: [], drop: [], mask: new Map() };
  const modes = new Set<string>();
  for (const rule of rules) {
    if (rule.trim() === '') continue;
    readRule(rule, name, out, modes);
  }
  if (modes.size > 1) {
    throw new ColumnRuleError(
      `${name} mixes kept columns (${out.keep.map(formatIdentifier).join(', ')}) and dropped ones (${out.drop
        .map((c) => `-${formatIdentifier(c)}`)
        .join(
          ', ',
        )}): list the columns to keep (an allow-list) or the columns to drop (a deny-list), not both`,
    );
  }
  if (out.keep.length + out.drop.length + out.mask.size === 0) {
    throw new ColumnRuleError(`${name} has no column rules; write e.g. ${name}: -password, email=hash`);
  }
  out.mode = modes.has('allow') ? 'allow' : 'deny';
  return out;
}

function addTable(all: TableColumnRules[], rules: TableColumnRules): void {
  if (all.some((r) => r.table.schema === rules.table.schema && r.table.table === rules.table.table)) {
    throw new ColumnRuleError(
      `${formatTableName(rules.table)} is given twice; put all its column rules in one entry`,
    );
  }
  all.push(rules);
}

/** Rules written back in the text form, names quoted where needed: for logs. */
export function formatColumnRules(rules: TableColumnRules): string {
  const parts = [
    ...rules.keep.map(formatIdentifier),
    ...rules.drop.map((c) => `-${formatIdentifier(c)}`),
    ...[...rules.mask].map(([c, m]) => `${formatIdentifier(c)}=${m}`),
  ];
  return `${formatTableName(rules.table)}: ${parts.join(', ')}`;
}

/** `public.users: -password, email=hash; public.orders: id, total`: one entry per table. */
export function parseColumnRules(text: string): TableColumnRules[] {
  const all: TableColumnRules[] = [];
  for (const raw of splitOutsideQuotes(text, ';')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const colon = indexOutsideQuotes(entry, ':');
    if (colon === -1) {
      throw new ColumnRuleError(
        `${quoteEntry(entry)} has no ":" between the table and its columns; write e.g. public.users: -password, email=hash`,
      );
    }
    let table: QualifiedName;
    try {
      table = parseTableName(entry.slice(0, colon).trim());
    } catch (err) {
      if (err instanceof TableNameError) throw new ColumnRuleError(err.message);
      throw err;
    }
    addTable(all, tableRules(table, splitOutsideQuotes(entry.slice(colon + 1), ',')));
  }
  return all;
}

/**
 * The config file form: the text form, or an object of table → rules (a string of comma-separated
 * rules, or a list of rules): `{"public.users": ["-password", "email=hash"]}`.
 */
export function columnRulesFromConfig(value: unknown): TableColumnRules[] {
  if (typeof value === 'string') return parseColumnRules(value);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ColumnRuleError(
      'expected "table: rules; table: rules" or an object like {"public.users": ["-password", "email=hash"]}',
    );
  }
  const all: TableColumnRules[] = [];
  for (const [name, rules] of Object.entries(value)) {
    let table: QualifiedName;
    try {
      table = tableNameFromConfig(name);
    } catch (err) {
      if (err instanceof TableNameError) throw new ColumnRuleError(err.message);
      throw err;
    }
    const list =
      typeof rules === 'string'
        ? splitOutsideQuotes(rules, ',')
        : Array.isArray(rules) && rules.every((r) => typeof r === 'string')
          ? (rules as string[])
          : undefined;
    if (list === undefined) {
      throw new ColumnRuleError(`the rules of ${quoteEntry(name)} must be a string or a list of strings`);
    }
    addTable(all, tableRules(table, list));
  }
  return all;
}

/** A table's columns as the catalog has them. */
export interface TableShape {
  columns: readonly string[];
  /** Primary-key and replica-identity columns: what `key` is made of. */
  keyColumns: readonly string[];
}

/** Rules checked against the table, ready to apply. */
export interface CompiledColumns {
  table: QualifiedName;
  /** Allow-list: the columns that pass (the key's included); undefined for a deny-list. */
  keep: ReadonlySet<string> | undefined;
  drop: ReadonlySet<string>;
  mask: ReadonlyMap<string, ColumnMask>;
}

/**
 * Checks rules against the table: every named column exists and none is a key column. Returns the
 * problems (empty when none), each naming the table, the column and the fix.
 */
export function checkColumnRules(rules: TableColumnRules, shape: TableShape): string[] {
  const name = formatTableName(rules.table);
  const problems: string[] = [];
  const named = [...rules.keep, ...rules.drop, ...rules.mask.keys()];
  const columns = new Set(shape.columns);
  for (const column of named) {
    if (!columns.has(column)) {
      const sameButCase = shape.columns.find((c) => c.toLowerCase() === column.toLowerCase());
      problems.push(
        `${name} has no column ${formatIdentifier(column)}${
          sameButCase ? ` (did you mean ${formatIdentifier(sameButCase)}? quote it to keep its case)` : ''
        }; its columns: ${shape.columns.map(formatIdentifier).join(', ')}`,
      );
    }
  }
  for (const column of [...rules.drop, ...rules.mask.keys()]) {
    if (shape.keyColumns.includes(column)) {
      problems.push(
        `${name}.${formatIdentifier(column)} is a key column: events are keyed, ordered and deduplicated by it, so it cannot be dropped or masked; remove it from the rules (or capture a view of the data without it)`,
      );
    }
  }
  return problems;
}

/** The rules of a checked table, ready for `createColumnFilter`. */
export function compileColumnRules(rules: TableColumnRules, shape: TableShape): CompiledColumns {
  return {
    table: rules.table,
    keep:
      rules.mode === 'allow'
        ? new Set([...rules.keep, ...rules.mask.keys(), ...shape.keyColumns])
        : undefined,
    drop: new Set(rules.drop),
    mask: new Map(rules.mask),
  };
}

/** HMAC of a value's text: injected, so this file needs no crypto of its own. */
export type ValueHasher = (text: string) => string;

/**
 * The transform applied to every event before the pipeline: row changes of a table with rules get
 * new rows; every other event passes as it is (the same object).
 */
export function createColumnFilter(
  tables: readonly CompiledColumns[],
  hash: ValueHasher,
): (event: RelayEvent) => RelayEvent {
  if (tables.length === 0) return (event) => event;
  const byTable = new Map<string, CompiledColumns>();
  for (const t of tables) byTable.set(`${t.table.schema}\u0000${t.table.table}`, t);
  const maskValue = (mask: ColumnMask, value: JsonValue): JsonValue => {
    // A null stays null: there is no value to hide, and a subscriber still sees that it is unset.
    if (value === null) return null;
    if (mask === 'redact') return REDACTED;
    return hash(typeof value === 'string' ? value : encodeJson(value));
  };
  const passes = (t: CompiledColumns, column: string) => (t.keep ? t.keep.has(column) : !t.drop.has(column));
  const filterRow = (t: CompiledColumns, row: Row | null): Row | null => {
    if (row === null) return null;
    const out: Row = {};
    for (const column of Object.keys(row)) {
      if (!passes(t, column)) continue;
      const mask = t.mask.get(column);
      setField(out, column, mask ? maskValue(mask, row[column] as JsonValue) : (row[column] as JsonValue));
    }
    return out;
  };
  return (event) => {
    if (event.kind !== 'change') return event;
    const t = byTable.get(`${event.schema}\u0000${event.table}`);
    if (t === undefined || event.op === 'truncate') return event;
    const out: ChangeEvent = {
      ...event,
      before: filterRow(t, event.before),
      after: filterRow(t, event.after),
      unchanged: event.unchanged.filter((c) => passes(t, c)),
    };
    if (event.changed !== undefined) out.changed = event.changed.filter((c) => passes(t, c));
    return out;
  };
}

function setField(row: Row, name: string, value: JsonValue): void {
  if (name === '__proto__') {
    Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
  } else {
    row[name] = value;
  }
}
