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
}

// Keyed by the columns array of a RelationMessage: a new Relation message brings a new array, so a schema
// change never sees a stale plan, and plans of dropped relations are collected with their arrays.
const plans = new WeakMap<readonly RelationColumn[], RowPlan>();

function planFor(columns: readonly RelationColumn[]): RowPlan {
  let plan = plans.get(columns);
  if (plan === undefined) {
    plan = {
      names: columns.map((c) => c.name),
      parsers: columns.map((c) => (isPassThrough(c.typeOid) ? null : valueParserFor(c.typeOid))),
      hasProtoName: columns.some((c) => c.name === '__proto__'),
    };
    plans.set(columns, plan);
  }
  return plan;
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
