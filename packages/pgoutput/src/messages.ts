// Logical Replication Message Formats, protocol versions 1–4:
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
// LSNs are bigint; timestamps are bigint microseconds since 2000-01-01 00:00:00 UTC (Postgres epoch).

/** Marks a TOASTed column whose value did not change (`u`): not null, simply not sent. */
export const UNCHANGED_TOAST: unique symbol = Symbol.for('sluice.pgoutput.unchangedToast');
export type UnchangedToast = typeof UNCHANGED_TOAST;

/**
 * One column of a TupleData: `null` (n), UNCHANGED_TOAST (u), a string for text format (t),
 * a Uint8Array for binary format (b).
 */
export type TupleValue = null | UnchangedToast | string | Uint8Array;
export type TupleData = TupleValue[];

export type ReplicaIdentity = 'default' | 'nothing' | 'full' | 'index';

export interface RelationColumn {
  /** Part of the replica identity key (flag bit 1). */
  isKey: boolean;
  name: string;
  typeOid: number;
  typeModifier: number;
}

export interface BeginMessage {
  tag: 'begin';
  finalLsn: bigint;
  commitTime: bigint;
  xid: number;
}
export interface CommitMessage {
  tag: 'commit';
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
}
export interface OriginMessage {
  tag: 'origin';
  originLsn: bigint;
  originName: string;
}
export interface RelationMessage {
  tag: 'relation';
  /** Present inside a streamed transaction (between Stream Start and Stream Stop). */
  xid: number | undefined;
  relationOid: number;
  schema: string;
  name: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}
export interface TypeMessage {
  tag: 'type';
  xid: number | undefined;
  typeOid: number;
  schema: string;
  name: string;
}
export interface InsertMessage {
  tag: 'insert';
  xid: number | undefined;
  relationOid: number;
  new: TupleData;
}
export interface UpdateMessage {
  tag: 'update';
  xid: number | undefined;
  relationOid: number;
  /** 'key' (K): old key columns; 'old' (O): the whole old row (REPLICA IDENTITY FULL); null: none sent. */
  oldKind: 'key' | 'old' | null;
  old: TupleData | null;
  new: TupleData;
}
export interface DeleteMessage {
  tag: 'delete';
  xid: number | undefined;
  relationOid: number;
  oldKind: 'key' | 'old';
  old: TupleData;
}
export interface TruncateMessage {
  tag: 'truncate';
  xid: number | undefined;
  cascade: boolean;
  restartIdentity: boolean;
  relationOids: number[];
}
/** pg_logical_emit_message output. */
export interface LogicalMessage {
  tag: 'message';
  xid: number | undefined;
  transactional: boolean;
  lsn: bigint;
  prefix: string;
  content: Uint8Array;
}
export interface StreamStartMessage {
  tag: 'stream_start';
  xid: number;
  firstSegment: boolean;
}
export interface StreamStopMessage {
  tag: 'stream_stop';
}
export interface StreamCommitMessage {
  tag: 'stream_commit';
  xid: number;
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
}
export interface StreamAbortMessage {
  tag: 'stream_abort';
  xid: number;
  subXid: number;
  /** Protocol 4 with parallel streaming only; null otherwise. */
  abortLsn: bigint | null;
  abortTime: bigint | null;
}
export interface BeginPrepareMessage {
  tag: 'begin_prepare';
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: bigint;
  xid: number;
  gid: string;
}
export interface PrepareMessage {
  tag: 'prepare';
  flags: number;
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: bigint;
  xid: number;
  gid: string;
}
export interface CommitPreparedMessage {
  tag: 'commit_prepared';
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
  xid: number;
  gid: string;
}
export interface RollbackPreparedMessage {
  tag: 'rollback_prepared';
  flags: number;
  prepareEndLsn: bigint;
  rollbackEndLsn: bigint;
  prepareTime: bigint;
  rollbackTime: bigint;
  xid: number;
  gid: string;
}
export interface StreamPrepareMessage {
  tag: 'stream_prepare';
  flags: number;
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: bigint;
  xid: number;
  gid: string;
}

export type PgOutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage
  | BeginPrepareMessage
  | PrepareMessage
  | CommitPreparedMessage
  | RollbackPreparedMessage
  | StreamPrepareMessage;

// --- CopyData layer of the streaming replication protocol -----------------------------------
// https://www.postgresql.org/docs/current/protocol-replication.html

export interface XLogData {
  tag: 'xlogdata';
  walStart: bigint;
  walEnd: bigint;
  sendTime: bigint;
  /** The pgoutput message bytes (a view, not a copy). */
  data: Uint8Array;
}
export interface PrimaryKeepalive {
  tag: 'keepalive';
  walEnd: bigint;
  sendTime: bigint;
  replyRequested: boolean;
}
export type ReplicationMessage = XLogData | PrimaryKeepalive;

export interface StandbyStatusUpdate {
  written: bigint;
  flushed: bigint;
  applied: bigint;
  clientTime: bigint;
  replyRequested: boolean;
}
