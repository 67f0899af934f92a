// Logical Replication Message Formats, protocol versions 1–4:
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
import {
  InvalidFieldError,
  type PgOutputDecodeError,
  TruncatedMessageError,
  UnknownMessageTypeError,
} from './errors.js';
import type {
  BeginMessage,
  BeginPrepareMessage,
  CommitMessage,
  CommitPreparedMessage,
  DeleteMessage,
  InsertMessage,
  LogicalMessage,
  OriginMessage,
  PgOutputMessage,
  PrepareMessage,
  RelationColumn,
  RelationMessage,
  ReplicaIdentity,
  RollbackPreparedMessage,
  StreamAbortMessage,
  StreamCommitMessage,
  StreamPrepareMessage,
  StreamStartMessage,
  StreamStopMessage,
  TruncateMessage,
  TupleData,
  TupleValue,
  TypeMessage,
  UpdateMessage,
} from './messages.js';
import { UNCHANGED_TOAST } from './messages.js';
import { decodeUtf8 } from './utf8.js';

export type ProtocolVersion = 1 | 2 | 3 | 4;

export interface PgOutputDecoderOptions {
  /**
   * The `proto_version` given to START_REPLICATION. Messages that version cannot produce are rejected
   * (streaming needs 2, two-phase needs 3, the parallel Stream Abort fields need 4). Default 4: accept all.
   */
  protocolVersion?: ProtocolVersion;
}

/** Byte1 tags of the pgoutput messages. */
enum Tag {
  Begin = 0x42, // B
  Commit = 0x43, // C
  Origin = 0x4f, // O
  Relation = 0x52, // R
  Type = 0x59, // Y
  Insert = 0x49, // I
  Update = 0x55, // U
  Delete = 0x44, // D
  Truncate = 0x54, // T
  Message = 0x4d, // M
  StreamStart = 0x53, // S
  StreamStop = 0x45, // E
  StreamCommit = 0x63, // c
  StreamAbort = 0x41, // A
  BeginPrepare = 0x62, // b
  Prepare = 0x50, // P
  CommitPrepared = 0x4b, // K
  RollbackPrepared = 0x72, // r
  StreamPrepare = 0x70, // p
}

/** Byte1 markers inside Update/Delete/Insert and TupleData. */
enum Marker {
  New = 0x4e, // N
  Key = 0x4b, // K
  Old = 0x4f, // O
  Null = 0x6e, // n
  Toast = 0x75, // u
  Text = 0x74, // t
  Binary = 0x62, // b
}

const EMPTY = new Uint8Array(0);
const WHOLE_TEXT_SKIPS = 16;
const WHOLE_TEXT_MAX_BYTES = 2048;

/** A plain Uint8Array copy (Buffer#slice would return a view, and a Buffer). */
function copyBytes(buf: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + end));
}

function byteName(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  return byte >= 0x20 && byte < 0x7f ? `${hex} ('${String.fromCharCode(byte)}')` : hex;
}

/**
 * Turns one pgoutput message (the payload of an XLogData) into a tagged object.
 *
 * Stateful in one way only: between Stream Start and Stream Stop, Relation, Type, Insert, Update,
 * Delete, Truncate and Message carry a leading xid (their `xid` field; `undefined` elsewhere). Use one
 * decoder per replication connection and call `reset()` when the connection restarts.
 *
 * Decoded values never alias the input: strings are decoded, byte fields (binary columns, logical
 * message content) are copied, so the caller may reuse its buffers.
 */
export class PgOutputDecoder {
  readonly protocolVersion: ProtocolVersion;
  private streaming = false;
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  private view: DataView | undefined = undefined;
  private type = 'unknown';
  /** The message from `textBase` on, decoded once for all tuple columns (see tuple()). */
  private text: string | undefined = undefined;
  private textBase = 0;
  /** Tuples left to decode column by column after a message whose text was not all ASCII. */
  private wholeTextSkips = 0;

  constructor(options: PgOutputDecoderOptions = {}) {
    const version = options.protocolVersion ?? 4;
    if (version !== 1 && version !== 2 && version !== 3 && version !== 4) {
      throw new RangeError(
        `Expected \`protocolVersion\` to be 1, 2, 3 or 4 (the pgoutput proto_version), got \`${String(version)}\``,
      );
    }
    this.protocolVersion = version;
  }

  /** True between a Stream Start and the following Stream Stop. */
  get inStream(): boolean {
    return this.streaming;
  }

  /** Forgets the streaming state, e.g. after the replication connection was re-established. */
  reset(): void {
    this.streaming = false;
  }

  decode(data: Uint8Array): PgOutputMessage {
    this.buf = data;
    this.view = undefined;
    this.text = undefined;
    this.pos = 1;
    if (data.length === 0) {
      this.type = 'unknown';
      this.pos = 0;
      throw this.truncated('message type', 1);
    }
    const tag = data[0]!;
    let msg: PgOutputMessage;
    switch (tag) {
      case Tag.Insert:
        this.type = 'insert';
        msg = this.insert();
        break;
      case Tag.Begin:
        this.type = 'begin';
        msg = this.begin();
        break;
      case Tag.Commit:
        this.type = 'commit';
        msg = this.commit();
        break;
      case Tag.Update:
        this.type = 'update';
        msg = this.update();
        break;
      case Tag.Delete:
        this.type = 'delete';
        msg = this.delete();
        break;
      case Tag.Relation:
        this.type = 'relation';
        msg = this.relation();
        break;
      case Tag.Type:
        this.type = 'type';
        msg = this.typeMessage();
        break;
      case Tag.Origin:
        this.type = 'origin';
        msg = this.origin();
        break;
      case Tag.Truncate:
        this.type = 'truncate';
        msg = this.truncate();
        break;
      case Tag.Message:
        this.type = 'message';
        msg = this.logicalMessage();
        break;
      case Tag.StreamStart:
        this.type = 'stream_start';
        this.requireVersion(2, tag);
        msg = this.streamStart();
        break;
      case Tag.StreamStop:
        this.type = 'stream_stop';
        this.requireVersion(2, tag);
        msg = this.streamStop();
        break;
      case Tag.StreamCommit:
        this.type = 'stream_commit';
        this.requireVersion(2, tag);
        msg = this.streamCommit();
        break;
      case Tag.StreamAbort:
        this.type = 'stream_abort';
        this.requireVersion(2, tag);
        msg = this.streamAbort();
        break;
      case Tag.BeginPrepare:
        this.type = 'begin_prepare';
        this.requireVersion(3, tag);
        msg = this.beginPrepare();
        break;
      case Tag.Prepare:
        this.type = 'prepare';
        this.requireVersion(3, tag);
        msg = this.prepare();
        break;
      case Tag.CommitPrepared:
        this.type = 'commit_prepared';
        this.requireVersion(3, tag);
        msg = this.commitPrepared();
        break;
      case Tag.RollbackPrepared:
        this.type = 'rollback_prepared';
        this.requireVersion(3, tag);
        msg = this.rollbackPrepared();
        break;
      case Tag.StreamPrepare:
        this.type = 'stream_prepare';
        this.requireVersion(3, tag);
        msg = this.streamPrepare();
        break;
      default:
        this.type = byteName(tag);
        throw new UnknownMessageTypeError(
          { messageType: this.type, field: 'message type', offset: 0 },
          tag,
          `unknown pgoutput message type ${byteName(tag)}; the bytes are not pgoutput or are out of sync`,
        );
    }
    if (this.pos !== data.length) {
      throw new InvalidFieldError(
        `${data.length - this.pos} unexpected byte(s) after the end of the message`,
        this.where('end of message', this.pos),
      );
    }
    return msg;
  }

  // --- messages ------------------------------------------------------------------------------

  private begin(): BeginMessage {
    const finalLsn = this.u64('final LSN');
    const commitTime = this.i64('commit timestamp');
    const xid = this.u32('xid');
    return { tag: 'begin', finalLsn, commitTime, xid };
  }

  private commit(): CommitMessage {
    const flags = this.u8('flags');
    const commitLsn = this.u64('commit LSN');
    const endLsn = this.u64('end LSN');
    const commitTime = this.i64('commit timestamp');
    return { tag: 'commit', flags, commitLsn, endLsn, commitTime };
  }

  private origin(): OriginMessage {
    const originLsn = this.u64('origin commit LSN');
    const originName = this.cstring('origin name');
    return { tag: 'origin', originLsn, originName };
  }

  private relation(): RelationMessage {
    const xid = this.streaming ? this.u32('xid') : undefined;
    const relationOid = this.u32('relation OID');
    const schema = this.cstring('namespace');
    const name = this.cstring('relation name');
    const replicaIdentity = this.replicaIdentity();
    const count = this.u16('column count');
    // Each column needs at least 10 bytes: refuse absurd counts before allocating.
    this.need('columns', count * 10);
    const columns: RelationColumn[] = [];
    for (let i = 0; i < count; i++) {
      const flags = this.u8('column flags');
      const columnName = this.cstring('column name');
      const typeOid = this.u32('column type OID');
      const typeModifier = this.i32('column type modifier');
      columns.push({ isKey: (flags & 1) !== 0, name: columnName, typeOid, typeModifier });
    }
    return { tag: 'relation', xid, relationOid, schema, name, replicaIdentity, columns };
  }

  private replicaIdentity(): ReplicaIdentity {
    const offset = this.pos;
    const byte = this.u8('replica identity');
    switch (byte) {
      case 0x64: // d
        return 'default';
      case 0x6e: // n
        return 'nothing';
      case 0x66: // f
        return 'full';
      case 0x69: // i
        return 'index';
      default:
        throw new InvalidFieldError(
          `unknown replica identity ${byteName(byte)}; expected 'd', 'n', 'f' or 'i'`,
          this.where('replica identity', offset),
        );
    }
  }

  private typeMessage(): TypeMessage {
    const xid = this.streaming ? this.u32('xid') : undefined;
    const typeOid = this.u32('type OID');
    const schema = this.cstring('namespace');
    const name = this.cstring('type name');
    return { tag: 'type', xid, typeOid, schema, name };
  }

  private insert(): InsertMessage {
    const xid = this.streaming ? this.u32('xid') : undefined;
    const relationOid = this.u32('relation OID');
    const offset = this.pos;
    const marker = this.u8('new tuple marker');
    if (marker !== Marker.New) throw this.badMarker('new tuple marker', offset, marker, "'N'");
    const tuple = this.tuple('new tuple');
    return { tag: 'insert', xid, relationOid, new: tuple };
  }

  private update(): UpdateMessage {
    const xid = this.streaming ? this.u32('xid') : undefined;
    const relationOid = this.u32('relation OID');
    let offset = this.pos;
    let marker = this.u8('tuple marker');
    let oldKind: 'key' | 'old' | null = null;
    let old: TupleData | null = null;
    if (marker === Marker.Key || marker === Marker.Old) {
      oldKind = marker === Marker.Key ? 'key' : 'old';
      old = this.tuple('old tuple');
      offset = this.pos;
      marker = this.u8('new tuple marker');
    }
    if (marker !== Marker.New) {
      throw this.badMarker('new tuple marker', offset, marker, old === null ? "'K', 'O' or 'N'" : "'N'");
    }
    const tuple = this.tuple('new tuple');
    return { tag: 'update', xid, relationOid, oldKind, old, new: tuple };
  }

  private delete(): DeleteMessage {
    const xid = this.streaming ? this.u32('xid') : undefined;
    const relationOid = this.u32('relation OID');
    const offset = this.pos;
    const marker = this.u8('old tuple marker');
    if (marker !== Marker.Key && marker !== Marker.Old) {
      throw this.badMarker('old tuple marker', offset, marker, "'K' or 'O'");
    }
    const old = this.tuple('old tuple');
    return { tag: 'delete', xid, relationOid, oldKind: marker === Marker.Key ? 'key' : 'old', old };
  }

  private truncate(): TruncateMessage {
    const xid = this.streaming ? this.u32('xid') : undefined;
    const count = this.u32('relation count');
    const options = this.u8('options');
    this.need('relation OIDs', count * 4);
    const relationOids: number[] = [];
    for (let i = 0; i < count; i++) relationOids.push(this.u32('relation OID'));
    return {
      tag: 'truncate',
      xid,
      cascade: (options & 1) !== 0,
      restartIdentity: (options & 2) !== 0,
      relationOids,
    };
  }

  private logicalMessage(): LogicalMessage {
    const xid = this.streaming ? this.u32('xid') : undefined;
    const flags = this.u8('flags');
    const lsn = this.u64('message LSN');
    const prefix = this.cstring('prefix');
    const length = this.length('content length');
    this.need('content', length);
    const content = copyBytes(this.buf, this.pos, this.pos + length);
    this.pos += length;
    return { tag: 'message', xid, transactional: (flags & 1) !== 0, lsn, prefix, content };
  }

  private streamStart(): StreamStartMessage {
    const xid = this.u32('xid');
    const firstSegment = this.u8('first segment') !== 0;
    this.streaming = true;
    return { tag: 'stream_start', xid, firstSegment };
  }

  private streamStop(): StreamStopMessage {
    this.streaming = false;
    return { tag: 'stream_stop' };
  }

  private streamCommit(): StreamCommitMessage {
    const xid = this.u32('xid');
    const flags = this.u8('flags');
    const commitLsn = this.u64('commit LSN');
    const endLsn = this.u64('end LSN');
    const commitTime = this.i64('commit timestamp');
    return { tag: 'stream_commit', xid, flags, commitLsn, endLsn, commitTime };
  }

  private streamAbort(): StreamAbortMessage {
    const xid = this.u32('xid');
    const subXid = this.u32('subtransaction xid');
    let abortLsn: bigint | null = null;
    let abortTime: bigint | null = null;
    // Protocol 4 appends these only when streaming = parallel, and the message has no flag for it: the
    // length tells. Reading whenever bytes remain makes a cut message fail as truncated.
    if (this.protocolVersion >= 4 && this.pos < this.buf.length) {
      abortLsn = this.u64('abort LSN');
      abortTime = this.i64('abort timestamp');
    }
    return { tag: 'stream_abort', xid, subXid, abortLsn, abortTime };
  }

  private beginPrepare(): BeginPrepareMessage {
    const prepareLsn = this.u64('prepare LSN');
    const endLsn = this.u64('end LSN');
    const prepareTime = this.i64('prepare timestamp');
    const xid = this.u32('xid');
    const gid = this.cstring('gid');
    return { tag: 'begin_prepare', prepareLsn, endLsn, prepareTime, xid, gid };
  }

  private prepare(): PrepareMessage {
    const flags = this.u8('flags');
    const prepareLsn = this.u64('prepare LSN');
    const endLsn = this.u64('end LSN');
    const prepareTime = this.i64('prepare timestamp');
    const xid = this.u32('xid');
    const gid = this.cstring('gid');
    return { tag: 'prepare', flags, prepareLsn, endLsn, prepareTime, xid, gid };
  }

  private commitPrepared(): CommitPreparedMessage {
    const flags = this.u8('flags');
    const commitLsn = this.u64('commit LSN');
    const endLsn = this.u64('end LSN');
    const commitTime = this.i64('commit timestamp');
    const xid = this.u32('xid');
    const gid = this.cstring('gid');
    return { tag: 'commit_prepared', flags, commitLsn, endLsn, commitTime, xid, gid };
  }

  private rollbackPrepared(): RollbackPreparedMessage {
    const flags = this.u8('flags');
    const prepareEndLsn = this.u64('prepare end LSN');
    const rollbackEndLsn = this.u64('rollback end LSN');
    const prepareTime = this.i64('prepare timestamp');
    const rollbackTime = this.i64('rollback timestamp');
    const xid = this.u32('xid');
    const gid = this.cstring('gid');
    return {
      tag: 'rollback_prepared',
      flags,
      prepareEndLsn,
      rollbackEndLsn,
      prepareTime,
      rollbackTime,
      xid,
      gid,
    };
  }

  private streamPrepare(): StreamPrepareMessage {
    const flags = this.u8('flags');
    const prepareLsn = this.u64('prepare LSN');
    const endLsn = this.u64('end LSN');
    const prepareTime = this.i64('prepare timestamp');
    const xid = this.u32('xid');
    const gid = this.cstring('gid');
    return { tag: 'stream_prepare', flags, prepareLsn, endLsn, prepareTime, xid, gid };
  }

  /** TupleData: Int16 column count, then per column Byte1 kind n/u/t/b (t and b: Int32 length, bytes). */
  private tuple(field: string): TupleData {
    const count = this.u16(`${field} column count`);
    const buf = this.buf;
    const end = buf.length;
    let pos = this.pos;
    // Every column takes at least its kind byte: refuse absurd counts before allocating.
    if (count > end - pos) {
      throw new TruncatedMessageError(this.where(`${field} columns`, pos), count, end - pos);
    }
    const values: TupleValue[] = new Array(count);
    // One native decode of the rest of the message, then substrings: far cheaper than one decode per
    // column. Valid only when every byte became one UTF-16 unit (no multi-byte sequence), which the
    // length tells (a k-byte sequence yields fewer than k units); otherwise decode column by column, and
    // for the next few messages do so directly, since non-ASCII text tends to come in runs.
    // Messages are capped in size for this because substrings of 13+ characters are views that keep the
    // whole decoded text alive as long as any of them lives (a kept key must not pin a 10 MB row).
    let text: string | null = null;
    if (end - pos <= WHOLE_TEXT_MAX_BYTES) {
      if (this.text === undefined && this.wholeTextSkips > 0) {
        this.wholeTextSkips--;
      } else {
        if (this.text === undefined) {
          this.textBase = pos;
          this.text = decodeUtf8(buf, pos, end);
        }
        if (this.text.length === end - this.textBase) text = this.text;
        else this.wholeTextSkips = WHOLE_TEXT_SKIPS;
      }
    }
    const base = this.textBase;
    for (let i = 0; i < count; i++) {
      const kind = buf[pos]!;
      if (kind === Marker.Text || kind === Marker.Binary) {
        if (pos + 5 > end) {
          this.pos = pos + 1;
          throw this.truncated(`${field} column ${i} length`, 4);
        }
        const length = (buf[pos + 1]! << 24) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 8) | buf[pos + 4]!;
        const start = pos + 5;
        if (length < 0) {
          throw new InvalidFieldError(
            `negative value length ${length}`,
            this.where(`${field} column ${i} length`, pos + 1),
          );
        }
        if (length > end - start) {
          throw new TruncatedMessageError(
            this.where(`${field} column ${i} value`, start),
            length,
            end - start,
          );
        }
        pos = start + length;
        if (kind === Marker.Binary) values[i] = copyBytes(buf, start, pos);
        else if (text !== null) values[i] = text.substring(start - base, pos - base);
        else values[i] = decodeUtf8(buf, start, pos);
      } else if (kind === Marker.Null) {
        values[i] = null;
        pos++;
      } else if (kind === Marker.Toast) {
        values[i] = UNCHANGED_TOAST;
        pos++;
      } else if (pos >= end) {
        this.pos = pos;
        throw this.truncated(`${field} column ${i} kind`, 1);
      } else {
        throw new InvalidFieldError(
          `unknown column kind ${byteName(kind)}; expected 'n', 'u', 't' or 'b'`,
          this.where(`${field} column ${i} kind`, pos),
        );
      }
    }
    this.pos = pos;
    return values;
  }

  // --- primitive reads (big-endian, bounds-checked) -------------------------------------------

  private u8(field: string): number {
    const pos = this.pos;
    if (pos >= this.buf.length) throw this.truncated(field, 1);
    this.pos = pos + 1;
    return this.buf[pos]!;
  }

  private u16(field: string): number {
    const pos = this.pos;
    const buf = this.buf;
    if (pos + 2 > buf.length) throw this.truncated(field, 2);
    this.pos = pos + 2;
    return (buf[pos]! << 8) | buf[pos + 1]!;
  }

  private i32(field: string): number {
    const pos = this.pos;
    const buf = this.buf;
    if (pos + 4 > buf.length) throw this.truncated(field, 4);
    this.pos = pos + 4;
    return (buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!;
  }

  private u32(field: string): number {
    return this.i32(field) >>> 0;
  }

  /** An Int32 length: negative is invalid (Postgres uses -1 only for NULL, which pgoutput marks with 'n'). */
  private length(field: string): number {
    const offset = this.pos;
    const value = this.i32(field);
    if (value < 0) throw new InvalidFieldError(`negative length ${value}`, this.where(field, offset));
    return value;
  }

  private u64(field: string): bigint {
    const pos = this.pos;
    if (pos + 8 > this.buf.length) throw this.truncated(field, 8);
    this.pos = pos + 8;
    return this.dataView().getBigUint64(pos);
  }

  private i64(field: string): bigint {
    const pos = this.pos;
    if (pos + 8 > this.buf.length) throw this.truncated(field, 8);
    this.pos = pos + 8;
    return this.dataView().getBigInt64(pos);
  }

  /** A NUL-terminated string. */
  private cstring(field: string): string {
    const buf = this.buf;
    const start = this.pos;
    const nul = buf.indexOf(0, start);
    if (nul < 0) {
      throw new TruncatedMessageError(
        this.where(`${field} (no NUL terminator)`, start),
        1,
        buf.length - start,
      );
    }
    this.pos = nul + 1;
    return decodeUtf8(buf, start, nul);
  }

  private dataView(): DataView {
    let view = this.view;
    if (view === undefined) {
      const buf = this.buf;
      view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      this.view = view;
    }
    return view;
  }

  // --- errors ----------------------------------------------------------------------------------

  private where(field: string, offset: number): { messageType: string; field: string; offset: number } {
    return { messageType: this.type, field, offset };
  }

  private need(field: string, bytes: number): void {
    const available = this.buf.length - this.pos;
    if (bytes > available) throw new TruncatedMessageError(this.where(field, this.pos), bytes, available);
  }

  private truncated(field: string, needed: number): PgOutputDecodeError {
    return new TruncatedMessageError(
      this.where(field, this.pos),
      needed,
      Math.max(0, this.buf.length - this.pos),
    );
  }

  private badMarker(field: string, offset: number, byte: number, expected: string): PgOutputDecodeError {
    return new InvalidFieldError(`got ${byteName(byte)}, expected ${expected}`, this.where(field, offset));
  }

  private requireVersion(version: ProtocolVersion, tag: number): void {
    if (this.protocolVersion < version) {
      throw new UnknownMessageTypeError(
        this.where('message type', 0),
        tag,
        `message type ${byteName(tag)} exists from protocol version ${version}, but the decoder was created for version ${this.protocolVersion}; pass the proto_version used in START_REPLICATION`,
      );
    }
  }
}
