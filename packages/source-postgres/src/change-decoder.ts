import {
  type ChangeEvent,
  type ChangeOp,
  type JsonValue,
  type Logger,
  type RelayEvent,
  type Row,
  type SourceInfo,
  sameJson,
} from '@sluice/core';
import {
  builtinTypeOid,
  formatLsn,
  keyTupleToRow,
  type LogicalMessage,
  PgOutputDecoder,
  type PgOutputMessage,
  type ProtocolVersion,
  pgTimestampToIso,
  type RelationColumn,
  type RelationMessage,
  type ReplicaIdentity,
  type TupleData,
  tupleToRow,
} from '@sluice/pgoutput';
import { UnexpectedMessageError } from './errors.js';
import type { IgnoredOp, OutboxHooks, RawTuple, StreamContext, TransactionInfo } from './outbox-hooks.js';
import { type SnapshotHooks, WATERMARK_PREFIX } from './snapshot/contract.js';

/** Prefix of the messages the heartbeat emits; they only exist to move the slot and are dropped. */
export const HEARTBEAT_PREFIX = 'sluice.heartbeat';

export interface CapturedTable {
  schema: string;
  table: string;
  /** Primary-key columns from the catalog, in key order; empty when the table has none. */
  primaryKey: readonly string[];
}

export interface ChangeDecoderOptions {
  slot: string;
  protocolVersion: ProtocolVersion;
  tables: readonly CapturedTable[];
  /** Read on every use: the snapshotter may attach its hooks after the source was created. */
  snapshotHooks: () => SnapshotHooks | undefined;
  outboxHooks?: OutboxHooks | undefined;
  logger: Logger;
}

interface CachedRelation {
  schema: string;
  table: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
  /** Columns of `key`: the catalog's primary key while the relation still has all of them, else the replica identity. */
  keyColumns: string[];
  /** Columns Postgres flags as replica identity: what a K (key) old tuple carries. */
  identityColumns: string[];
  captured: boolean;
  /** Published only for the outbox hooks (one of `outboxHooks.tables`, not captured). */
  outboxOnly: boolean;
  /** Column name → tuple index, built on first use by a RawTuple. */
  columnIndex?: Map<string, number>;
}

interface OpenTransaction extends TransactionInfo {
  commitLsnText: string;
  /** First seq of the change being handled. */
  base: number;
  /** Seqs the change being handled has taken so far (events, or skipped truncated relations). */
  used: number;
}

const utf8 = new TextDecoder();

/** The messages of a transaction that are changes: each takes at least one seq. */
const COUNTED = new Set<PgOutputMessage['tag']>(['insert', 'update', 'delete', 'truncate', 'message']);

function tableId(schema: string, table: string): string {
  return `${schema}\u0000${table}`;
}

/**
 * Turns pgoutput messages into core events, one replication connection's worth (create a new one per
 * connection: Postgres resends Relation messages on each). Pure and synchronous: no I/O, no clock.
 *
 * Event ids are `${slot}:${commitLsn}:${seq}` where commitLsn is Begin.finalLsn and seq is the
 * change's index among the changes Postgres sent for the transaction (published or not, one per
 * truncated relation), so a replayed transaction yields the same ids whatever this relay captures.
 *
 * `before` depends on the table's replica identity: FULL gives the whole old row (O tuple), DEFAULT
 * and USING INDEX give only the identity columns (K tuple, and only when they changed for updates),
 * NOTHING gives null (and Postgres does not send deletes at all).
 */
export class ChangeDecoder {
  private readonly decoder: PgOutputDecoder;
  private readonly captured: Map<string, CapturedTable>;
  private readonly outboxTables: Set<string>;
  private readonly relations = new Map<number, CachedRelation>();
  /**
   * Type OID → the built-in type it is read as, from Type messages (sent before a Relation for each
   * non-built-in column type): a domain's Type message names its base type.
   */
  private readonly builtinTypes = new Map<number, number>();
  private tx: OpenTransaction | null = null;

  constructor(private readonly options: ChangeDecoderOptions) {
    this.decoder = new PgOutputDecoder({ protocolVersion: options.protocolVersion });
    this.captured = new Map(options.tables.map((t) => [tableId(t.schema, t.table), t]));
    this.outboxTables = new Set((options.outboxHooks?.tables ?? []).map((t) => tableId(t.schema, t.table)));
  }

  get inTransaction(): boolean {
    return this.tx !== null;
  }

  /**
   * Decodes one XLogData payload, appends the events to publish to `out`, and returns the cursor to
   * commit when the message ended a transaction (Commit.endLsn, exactly as sent), else null.
   */
  handle(walStart: bigint, data: Uint8Array, out: RelayEvent[]): bigint | null {
    const msg = this.decoder.decode(data);
    const tx = this.tx;
    if (tx === null || !COUNTED.has(msg.tag)) return this.dispatch(msg, walStart, out);
    // Every change Postgres sends in a transaction takes a seq, published or not: ids then do not
    // depend on what this relay captures, so a replay under other settings (a table added to or
    // removed from SLUICE_TABLES) cannot give an event the id of another one already stored.
    tx.used = 0;
    const result = this.dispatch(msg, walStart, out);
    tx.base += Math.max(1, tx.used);
    tx.used = 0;
    return result;
  }

  private dispatch(msg: PgOutputMessage, walStart: bigint, out: RelayEvent[]): bigint | null {
    switch (msg.tag) {
      case 'begin': {
        if (this.tx) {
          throw new UnexpectedMessageError(
            `Begin of xid ${msg.xid} at ${formatLsn(walStart)} inside the open transaction ${this.tx.xid}`,
          );
        }
        this.tx = {
          commitLsn: msg.finalLsn,
          commitLsnText: formatLsn(msg.finalLsn),
          commitTime: pgTimestampToIso(msg.commitTime),
          xid: msg.xid,
          base: 0,
          used: 0,
        };
        return null;
      }
      case 'commit': {
        if (!this.tx)
          throw new UnexpectedMessageError(`Commit at ${formatLsn(walStart)} outside a transaction`);
        this.tx = null;
        return msg.endLsn;
      }
      case 'relation':
        this.cacheRelation(msg);
        return null;
      case 'type': {
        const builtin = builtinTypeOid(msg.schema, msg.name);
        if (builtin === undefined) this.builtinTypes.delete(msg.typeOid);
        else this.builtinTypes.set(msg.typeOid, builtin);
        return null;
      }
      case 'origin':
        return null;
      case 'insert': {
        const rel = this.relation(msg.relationOid, 'Insert', walStart);
        const outbox = this.options.outboxHooks?.onInsert;
        if (!rel.captured && !outbox) return null;
        const { row, unchanged } = tupleToRow(rel.columns, msg.new);
        if (outbox) {
          const replaced = outbox(
            { schema: rel.schema, table: rel.table },
            row,
            this.context(walStart),
            rawTuple(rel, msg.new),
          );
          if (replaced) {
            for (const e of replaced) out.push(e);
            return null;
          }
        }
        if (!rel.captured) return null;
        this.emitChange(out, walStart, rel, 'insert', null, row, unchanged, undefined);
        return null;
      }
      case 'update': {
        const rel = this.relation(msg.relationOid, 'Update', walStart);
        if (!rel.captured) return this.ignored(rel, 'update', walStart);
        const { row: after, unchanged } = tupleToRow(rel.columns, msg.new);
        const before = msg.old && msg.oldKind ? this.oldRow(rel, msg.oldKind, msg.old) : null;
        let stillUnchanged = unchanged;
        if (before && msg.oldKind === 'old' && unchanged.length > 0) {
          // REPLICA IDENTITY FULL logs the old row detoasted: the "unchanged" values are right there.
          stillUnchanged = [];
          for (const name of unchanged) {
            if (Object.hasOwn(before, name)) setField(after, name, before[name] ?? null);
            else stillUnchanged.push(name);
          }
        }
        const changed = before ? changedColumns(rel.columns, before, after) : undefined;
        this.emitChange(out, walStart, rel, 'update', before, after, stillUnchanged, changed);
        return null;
      }
      case 'delete': {
        const rel = this.relation(msg.relationOid, 'Delete', walStart);
        if (!rel.captured) return this.ignored(rel, 'delete', walStart);
        const before = this.oldRow(rel, msg.oldKind, msg.old);
        this.emitChange(out, walStart, rel, 'delete', before, null, [], undefined);
        return null;
      }
      case 'truncate': {
        for (const oid of msg.relationOids) {
          const rel = this.relation(oid, 'Truncate', walStart);
          if (rel.captured) this.emitChange(out, walStart, rel, 'truncate', null, null, [], undefined);
          else {
            // One seq per truncated relation, captured or not, for the same reason as above.
            if (this.tx) this.tx.used++;
            this.ignored(rel, 'truncate', walStart);
          }
        }
        return null;
      }
      case 'message':
        this.onMessage(msg, walStart, out);
        return null;
      default:
        // Streaming and two-phase messages only come when START_REPLICATION asks for them; it does not.
        throw new UnexpectedMessageError(
          `pgoutput sent a ${msg.tag} message at ${formatLsn(walStart)}, which this source did not ask for ` +
            '(no streaming, no two_phase)',
        );
    }
  }

  /** A change of a relation published only for the outbox hooks: never an event, but the hooks may say so. */
  private ignored(rel: CachedRelation, op: IgnoredOp, walStart: bigint): null {
    if (rel.outboxOnly) {
      this.options.outboxHooks?.onIgnoredChange?.(
        { schema: rel.schema, table: rel.table },
        op,
        this.context(walStart),
      );
    }
    return null;
  }

  private relation(oid: number, what: string, walStart: bigint): CachedRelation {
    const rel = this.relations.get(oid);
    if (!rel) {
      throw new UnexpectedMessageError(
        `${what} at ${formatLsn(walStart)} for relation OID ${oid} before any Relation message described it`,
      );
    }
    return rel;
  }

  private cacheRelation(msg: RelationMessage): void {
    const id = tableId(msg.schema, msg.name);
    const captured = this.captured.get(id);
    const names = new Set(msg.columns.map((c) => c.name));
    const identityColumns = msg.columns.filter((c) => c.isKey).map((c) => c.name);
    // With REPLICA IDENTITY FULL every column is flagged as key: the catalog's primary key is the real one.
    const primaryKey = captured?.primaryKey ?? [];
    const keyColumns =
      primaryKey.length > 0 && primaryKey.every((c) => names.has(c)) ? [...primaryKey] : identityColumns;
    this.relations.set(msg.relationOid, {
      schema: msg.schema,
      table: msg.name,
      replicaIdentity: msg.replicaIdentity,
      columns: this.readAsBuiltin(msg.columns),
      keyColumns,
      identityColumns,
      captured: captured !== undefined,
      outboxOnly: captured === undefined && this.outboxTables.has(id),
    });
  }

  /** The columns with domain (and other resolvable) type OIDs replaced by the built-in type they are read as. */
  private readAsBuiltin(columns: RelationColumn[]): RelationColumn[] {
    let resolved: RelationColumn[] | undefined;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      const builtin = this.builtinTypes.get(column.typeOid);
      if (builtin === undefined || builtin === column.typeOid) continue;
      resolved ??= [...columns];
      resolved[i] = { ...column, typeOid: builtin };
    }
    return resolved ?? columns;
  }

  private oldRow(rel: CachedRelation, kind: 'key' | 'old', tuple: TupleData): Row {
    // A K tuple has every column, the non-identity ones as nulls that mean "not sent", not NULL.
    return kind === 'old' ? tupleToRow(rel.columns, tuple).row : keyTupleToRow(rel.columns, tuple).row;
  }

  private emitChange(
    out: RelayEvent[],
    walStart: bigint,
    rel: CachedRelation,
    op: ChangeOp,
    before: Row | null,
    after: Row | null,
    unchanged: string[],
    changed: string[] | undefined,
  ): void {
    const source = this.nextSource(walStart, op);
    const event: ChangeEvent = {
      kind: 'change',
      id: this.changeId(source),
      op,
      schema: rel.schema,
      table: rel.table,
      key: op === 'truncate' ? null : keyOf(rel, after ?? before, before),
      before,
      after,
      unchanged,
      source,
    };
    if (changed !== undefined) event.changed = changed;
    this.options.snapshotHooks()?.observeChange(event);
    out.push(event);
  }

  private nextSource(walStart: bigint, what: string): SourceInfo {
    const tx = this.tx;
    if (!tx) {
      throw new UnexpectedMessageError(`${what} at ${formatLsn(walStart)} outside a transaction`);
    }
    return {
      lsn: formatLsn(walStart),
      commitLsn: tx.commitLsnText,
      xid: tx.xid,
      commitTime: tx.commitTime,
      seq: tx.base + tx.used++,
      snapshot: null,
    };
  }

  private changeId(source: SourceInfo): string {
    return `${this.options.slot}:${source.commitLsn}:${source.seq}`;
  }

  private onMessage(msg: LogicalMessage, walStart: bigint, out: RelayEvent[]): void {
    if (msg.prefix === HEARTBEAT_PREFIX) return;
    if (msg.prefix === WATERMARK_PREFIX) {
      this.onWatermark(msg, walStart, out);
      return;
    }
    const hook = this.options.outboxHooks?.onLogicalMessage;
    if (!hook) return;
    for (const e of hook(msg, this.context(walStart))) out.push(e);
  }

  private onWatermark(msg: LogicalMessage, walStart: bigint, out: RelayEvent[]): void {
    const hooks = this.options.snapshotHooks();
    const tx = this.tx;
    if (!hooks) return;
    if (!msg.transactional || !tx) {
      this.options.logger.warn(
        { lsn: formatLsn(walStart), prefix: msg.prefix },
        'ignoring a non-transactional snapshot watermark (the snapshotter emits them transactionally)',
      );
      return;
    }
    const { snapshotId, rows } = hooks.onWatermark(utf8.decode(msg.content), {
      commitLsn: tx.commitLsn,
      commitTime: tx.commitTime,
      xid: tx.xid,
    });
    for (const r of rows) {
      const source: SourceInfo = {
        lsn: tx.commitLsnText,
        commitLsn: tx.commitLsnText,
        xid: tx.xid,
        commitTime: tx.commitTime,
        seq: tx.base + tx.used++,
        snapshot: snapshotId,
      };
      out.push({
        kind: 'change',
        // Per snapshot and row, not per position: a chunk read again after a crash repeats its ids.
        id: r.id,
        op: 'read',
        schema: r.schema,
        table: r.table,
        key: r.key,
        before: null,
        after: r.after,
        unchanged: [],
        source,
      });
    }
  }

  private context(walStart: bigint): StreamContext {
    const tx = this.tx;
    return {
      slot: this.options.slot,
      transaction: tx ? { commitLsn: tx.commitLsn, commitTime: tx.commitTime, xid: tx.xid } : null,
      lsn: walStart,
      nextSource: () => this.nextSource(walStart, 'an outbox event'),
      changeId: (source) => this.changeId(source),
    };
  }
}

function rawTuple(rel: CachedRelation, tuple: TupleData): RawTuple {
  return {
    text(column) {
      if (!rel.columnIndex) rel.columnIndex = new Map(rel.columns.map((c, i) => [c.name, i]));
      const i = rel.columnIndex.get(column);
      if (i === undefined) return undefined;
      const value = tuple[i];
      if (value === null || typeof value === 'string') return value;
      // Sluice never asks for binary values, and an insert carries no unchanged TOAST marker.
      return undefined;
    },
    isJson(column) {
      const c = rel.columns.find((col) => col.name === column);
      return c === undefined ? undefined : c.typeOid === JSON_OID || c.typeOid === JSONB_OID;
    },
  };
}

/** pg_type OIDs of json and jsonb (fixed in every Postgres). */
const JSON_OID = 114;
const JSONB_OID = 3802;

/**
 * The columns, in column order, whose value differs between the old and the new row, among those
 * both carry: a key-only old row is compared on its key columns; an unchanged TOAST column is absent
 * from `after` (or, with REPLICA IDENTITY FULL, filled in from `before`), so it never counts.
 */
function changedColumns(columns: readonly RelationColumn[], before: Row, after: Row): string[] {
  const changed: string[] = [];
  for (const { name } of columns) {
    if (Object.hasOwn(before, name) && Object.hasOwn(after, name) && !sameJson(before[name], after[name])) {
      changed.push(name);
    }
  }
  return changed;
}

/** Key columns from `row`, falling back to `fallback` for any it lacks (an unchanged TOAST key column). */
function keyOf(rel: CachedRelation, row: Row | null, fallback: Row | null): Row | null {
  if (rel.keyColumns.length === 0) return null;
  let key = pick(rel.keyColumns, row, fallback);
  // A K tuple of a USING INDEX identity may lack primary-key columns: the identity is the key then.
  if (!key && rel.keyColumns !== rel.identityColumns && rel.identityColumns.length > 0) {
    key = pick(rel.identityColumns, row, fallback);
  }
  return key;
}

function pick(columns: readonly string[], row: Row | null, fallback: Row | null): Row | null {
  const key: Row = {};
  for (const name of columns) {
    if (row && Object.hasOwn(row, name)) setField(key, name, row[name] ?? null);
    else if (fallback && Object.hasOwn(fallback, name)) setField(key, name, fallback[name] ?? null);
    else return null;
  }
  return key;
}

/** A column named `__proto__` must become an own property, not replace the prototype. */
function setField(row: Row, name: string, value: JsonValue): void {
  if (name === '__proto__') {
    Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
  } else {
    row[name] = value;
  }
}
