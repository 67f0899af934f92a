import type { RelationColumn, TupleData } from '../messages.js';
import { UNCHANGED_TOAST } from '../messages.js';
import { bytesToBase64 } from './base64.js';
import { PgValueParseError, TupleShapeError } from './errors.js';
import type { JsonValue, ValueParser } from './json.js';
import { isPassThrough, valueParserFor } from './parse.js';

export type Row = Record<string, JsonValue>;

export interface DecodedRow {
  /** Column name → value. Columns whose TOASTed value was not sent are absent (see `unchanged`). */
  row: Row;
  /** Names of the columns sent as "unchanged TOAST" ('u'): their value is the one the row had before. */
  unchanged: string[];
}

/** Per Relation columns array: the parser of each column (null when the text is kept as is). */
interface RowPlan {
  names: string[];
  parsers: (ValueParser | null)[];
  hasProtoName: boolean;
  /**
   * The row as one object literal, for tuples of text and null only (the common case): undefined for any
   * other tuple. Null when code generation is unavailable or unsafe for these names.
   */
  literal: ((tuple: TupleData) => Row | undefined) | null;
}

// Keyed by the columns array of a RelationMessage: a new Relation message brings a new array, so a schema
// change never sees a stale plan, and plans of dropped relations are collected with their arrays.
const plans = new WeakMap<readonly RelationColumn[], RowPlan>();
// Consecutive rows nearly always share a relation: skip the WeakMap lookup for them.
let lastColumns: readonly RelationColumn[] | undefined;
let lastPlan: RowPlan | undefined;

function planFor(columns: readonly RelationColumn[]): RowPlan {
  if (columns === lastColumns && lastPlan !== undefined) return lastPlan;
  let plan = plans.get(columns);
  if (plan === undefined) {
    const names = columns.map((c) => c.name);
    const parsers = columns.map((c) => (isPassThrough(c.typeOid) ? null : valueParserFor(c.typeOid)));
    const hasProtoName = names.includes('__proto__');
    plan = { names, parsers, hasProtoName, literal: hasProtoName ? null : compileLiteral(names, parsers) };
    plans.set(columns, plan);
  }
  lastColumns = columns;
  lastPlan = plan;
  return plan;
}

/**
 * Builds, once per relation, a function that creates the row as an object literal. Assigning columns one
 * by one with computed keys is a megamorphic keyed store per column, several times slower than a literal
 * whose shape V8 knows up front; each generated function also has its own, monomorphic, parser call sites.
 * The source holds only JSON-quoted column names and numeric indices: no value ever reaches it.
 */
function compileLiteral(names: string[], parsers: (ValueParser | null)[]): RowPlan['literal'] {
  const reads = names.map((_, i) => `const v${i} = tuple[${i}];`).join('\n');
  const guard = names.map((_, i) => `(typeof v${i} !== 'string' && v${i} !== null)`).join(' || ');
  const fields = names
    .map(
      (name, i) =>
        `${JSON.stringify(name)}: ${parsers[i] === null ? `v${i}` : `v${i} === null ? null : p${i}(v${i})`}`,
    )
    .join(',\n');
  const params = parsers.map((_, i) => `p${i}`);
  const source = `return function rowLiteral(tuple) {\n${reads}\n${
    names.length > 0 ? `if (${guard}) return undefined;\n` : ''
  }return {${fields}};\n};`;
  try {
    return new Function(...params, source)(...parsers) as RowPlan['literal'];
  } catch {
    // Code generation disallowed (--disallow-code-generation-from-strings, a CSP): use the loop.
    return null;
  }
}

/**
 * Turns a TupleData into a JSON-safe row using the columns of its Relation message. Text values go through
 * the per-type parsers (valueParserFor), binary values ('b', with `binary` publication output) become
 * base64, null stays null, unchanged TOAST columns are left out of the row and listed in `unchanged`.
 *
 * `into` receives the values instead of a new object: pass a copy of the previous row image to have
 * unchanged TOAST columns keep their old values. The `columns` array is treated as immutable.
 */
export function tupleToRow(columns: readonly RelationColumn[], tuple: TupleData, into?: Row): DecodedRow {
  const plan = planFor(columns);
  const { names, parsers } = plan;
  const count = names.length;
  if (tuple.length !== count) throw new TupleShapeError(count, tuple.length);
  if (into === undefined && plan.literal !== null) {
    try {
      const row = plan.literal(tuple);
      if (row !== undefined) return { row, unchanged: [] };
    } catch {
      // A value did not parse: the loop below parses again and says which column.
    }
  }
  const row: Row = into ?? {};
  const unchanged: string[] = [];
  let i = 0;
  try {
    for (; i < count; i++) {
      const value = tuple[i];
      const name = names[i]!;
      let out: JsonValue;
      if (typeof value === 'string') {
        const parser = parsers[i];
        out = parser == null ? value : parser(value);
      } else if (value === null) {
        out = null;
      } else if (value === UNCHANGED_TOAST) {
        unchanged.push(name);
        continue;
      } else if (value instanceof Uint8Array) {
        out = bytesToBase64(value);
      } else {
        throw new TypeError(`tuple value ${i} is not null, UNCHANGED_TOAST, a string or a Uint8Array`);
      }
      if (plan.hasProtoName && name === '__proto__') {
        // A plain assignment would replace the row's prototype instead of adding the column.
        Object.defineProperty(row, name, {
          value: out,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        row[name] = out;
      }
    }
  } catch (err) {
    if (err instanceof PgValueParseError) throw err.inColumn(names[i]!);
    throw err;
  }
  return { row, unchanged };
}

/**
 * The replica identity columns of an old tuple (Update/Delete with oldKind 'key'): Postgres sends the
 * other columns as null, so they are left out.
 */
export function keyTupleToRow(columns: readonly RelationColumn[], tuple: TupleData): DecodedRow {
  const { row, unchanged } = tupleToRow(columns, tuple);
  const keys: Row = {};
  for (const column of columns) {
    if (column.isKey && Object.hasOwn(row, column.name)) {
      Object.defineProperty(keys, column.name, {
        value: row[column.name],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return { row: keys, unchanged };
}
