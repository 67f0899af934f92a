import {
  type ChangeEvent,
  type ChangeOp,
  type JsonValue,
  PermanentError,
  type RelayEvent,
  type Row,
  type SourceInfo,
  type UpdateDescription,
} from '@sluice/core';
import { InvalidOutboxEventError, type OutboxColumns, outboxEventFromRow } from '@sluice/outbox';
import { documentToRow } from './bson-json.js';
import { changeEventId, decodeResumeToken, formatClusterTime } from './resume-token.js';

/**
 * A change stream event document as the driver hands it over (fields per the MongoDB manual,
 * "Change Events"). Typed loosely on purpose: the mapping checks what it reads.
 */
export type ChangeStreamEvent = Record<string, unknown>;

export interface MappingContext {
  /** The database the stream watches: the `schema` of an invalidate, which names none. */
  database: string;
  /** The outbox collection (in `database`), or null. Its inserts become outbox events. */
  outbox: { collection: string; columns: OutboxColumns } | null;
}

export interface MappedEvent {
  /** The event's resume token `_data`: the position to store once the event is acknowledged. */
  token: string;
  /** What to publish; null for an event Sluice does not publish (a change of the outbox other than an insert). */
  event: RelayEvent | null;
  /** The operation type as the server named it. */
  operationType: string;
  /** The stream is over (invalidate): reopen it with `startAfter` the token. */
  invalidate: boolean;
}

const OPS: Record<string, ChangeOp> = {
  insert: 'insert',
  update: 'update',
  replace: 'replace',
  delete: 'delete',
  drop: 'drop',
  rename: 'rename',
  dropDatabase: 'dropDatabase',
  invalidate: 'invalidate',
};

/**
 * The pure mapping of one change stream event to the envelope: `op`, `schema` = database,
 * `table` = collection, `key` = documentKey, `before` = fullDocumentBeforeChange (when pre-images
 * are on), `after` = fullDocument (for updates: the looked-up document, which may be newer than
 * this change, or null when it is gone), `updateDescription` for updates, `to` for renames.
 */
export function mapChangeEvent(doc: ChangeStreamEvent, ctx: MappingContext): MappedEvent {
  const token = tokenOf(doc);
  const operationType = doc['operationType'];
  if (typeof operationType !== 'string') throw malformed(token, 'operationType is missing');
  const op = OPS[operationType];
  if (op === undefined) {
    throw new PermanentError(`change stream event of unknown type "${operationType}" (token ${token})`, {
      code: 'unknown_operation',
      hint: 'Sluice reads insert, update, replace, delete, drop, rename, dropDatabase and invalidate; report this event type',
    });
  }
  const data = decodeResumeToken(token);
  const ns = (doc['ns'] ?? {}) as { db?: unknown; coll?: unknown };
  const schema = typeof ns.db === 'string' ? ns.db : ctx.database;
  const table = typeof ns.coll === 'string' ? ns.coll : '';
  const source: SourceInfo = {
    lsn: token,
    commitLsn: formatClusterTime(data.clusterTime),
    xid: txnNumber(doc['txnNumber']),
    commitTime: commitTime(doc, data.clusterTime.t),
    seq: data.txnOpIndex,
    snapshot: null,
  };

  if (ctx.outbox !== null && schema === ctx.database && table === ctx.outbox.collection && isRowOp(op)) {
    if (op !== 'insert') return { token, event: null, operationType, invalidate: false };
    const full = doc['fullDocument'];
    if (full === null || typeof full !== 'object')
      throw malformed(token, 'an outbox insert without fullDocument');
    return {
      token,
      event: outboxEvent(full as Record<string, unknown>, ctx.outbox, source, `${schema}.${table}`),
      operationType,
      invalidate: false,
    };
  }

  const event: ChangeEvent = {
    kind: 'change',
    id: changeEventId(token),
    op,
    schema,
    table,
    key: isRowOp(op) ? rowOf(doc['documentKey'], 'documentKey') : null,
    before: op === 'insert' ? null : rowOf(doc['fullDocumentBeforeChange'], 'fullDocumentBeforeChange'),
    after:
      op === 'insert' || op === 'update' || op === 'replace'
        ? rowOf(doc['fullDocument'], 'fullDocument')
        : null,
    unchanged: [],
    source,
  };
  if (isRowOp(op) && event.key === null) throw malformed(token, `a ${operationType} without documentKey`);
  if (op === 'update') event.updateDescription = updateDescriptionOf(doc['updateDescription'], token);
  if (op === 'rename') {
    const to = (doc['to'] ?? {}) as { db?: unknown; coll?: unknown };
    if (typeof to.db !== 'string' || typeof to.coll !== 'string')
      throw malformed(token, 'a rename without `to`');
    event.to = { schema: to.db, table: to.coll };
  }
  return { token, event, operationType, invalidate: op === 'invalidate' };
}

function isRowOp(op: ChangeOp): boolean {
  return op === 'insert' || op === 'update' || op === 'replace' || op === 'delete';
}

/** The `_data` of the event's `_id` (its resume token). */
export function tokenOf(doc: ChangeStreamEvent): string {
  const id = doc['_id'] as { _data?: unknown } | undefined;
  if (id === undefined || id === null || typeof id._data !== 'string') {
    throw new PermanentError('change stream event without a resume token (_id._data)', {
      code: 'no_resume_token',
      hint: 'a $project in the change stream pipeline must keep _id; Sluice adds none, so report this',
    });
  }
  return id._data;
}

function rowOf(value: unknown, field: string): Row | null {
  if (value === undefined || value === null) return null;
  return documentToRow(value as Record<string, unknown>, field);
}

function txnNumber(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : null;
}

/** `wallTime` (MongoDB 6.0+, milliseconds), else the cluster time's seconds. */
function commitTime(doc: ChangeStreamEvent, seconds: number): string {
  const wall = doc['wallTime'];
  if (wall instanceof Date && !Number.isNaN(wall.getTime())) return wall.toISOString();
  return new Date(seconds * 1000).toISOString();
}

function updateDescriptionOf(value: unknown, token: string): UpdateDescription {
  if (value === null || typeof value !== 'object')
    throw malformed(token, 'an update without updateDescription');
  const u = value as Record<string, unknown>;
  const out: UpdateDescription = {
    updatedFields: documentToRow((u['updatedFields'] ?? {}) as Record<string, unknown>, 'updatedFields'),
    removedFields: Array.isArray(u['removedFields']) ? u['removedFields'].map(String) : [],
    truncatedArrays: Array.isArray(u['truncatedArrays'])
      ? u['truncatedArrays'].map((t: { field?: unknown; newSize?: unknown }) => ({
          field: String(t.field),
          newSize: Number(t.newSize),
        }))
      : [],
  };
  const paths = u['disambiguatedPaths'];
  if (paths !== undefined && paths !== null && typeof paths === 'object') {
    out.disambiguatedPaths = {};
    for (const [path, parts] of Object.entries(paths as Record<string, unknown>)) {
      if (!Array.isArray(parts)) continue;
      out.disambiguatedPaths[path] = parts.map((p) => (typeof p === 'string' ? p : Number(p)));
    }
  }
  return out;
}

/**
 * An outbox document to its event, through the same transform as the Postgres outbox. An ObjectId,
 * Int64 or Decimal128 in the id or aggregate id field is read as its text (a hex id, digits).
 */
function outboxEvent(
  full: Record<string, unknown>,
  outbox: { collection: string; columns: OutboxColumns },
  source: SourceInfo,
  where: string,
): RelayEvent {
  const row = documentToRow(full);
  const { columns } = outbox;
  for (const field of [columns.id, columns.aggregateId]) {
    const value = row[field];
    if (value !== undefined) row[field] = scalarText(value);
  }
  const payload = full[columns.payload];
  try {
    return outboxEventFromRow(
      row,
      columns,
      source,
      typeof payload === 'string' ? { payloadText: payload } : {},
    );
  } catch (err) {
    if (!(err instanceof InvalidOutboxEventError)) throw err;
    throw new InvalidOutboxEventError(err.field, `MongoDB outbox ${where}: ${err.message.split('\n')[0]}`, {
      cause: err,
      hint: `write the document with the fields the outbox reads (${[
        columns.id,
        columns.aggregateType,
        columns.aggregateId,
        columns.type,
        columns.payload,
      ].join(', ')}), or map them with SLUICE_OUTBOX_COLUMNS`,
    });
  }
}

/** `{"$oid": "…"}`, `{"$numberLong": "…"}`, `{"$numberDecimal": "…"}` → the text inside. */
function scalarText(value: JsonValue): JsonValue {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length !== 1) return value;
  const inner = (value as Record<string, JsonValue>)[keys[0] as string];
  if (
    (keys[0] === '$oid' || keys[0] === '$numberLong' || keys[0] === '$numberDecimal') &&
    typeof inner === 'string'
  )
    return inner;
  return value;
}

function malformed(token: string, what: string): PermanentError {
  return new PermanentError(`change stream event ${token} is malformed: ${what}`, {
    code: 'malformed_event',
    hint: 'report this event to the Sluice maintainers with the MongoDB version',
  });
}
