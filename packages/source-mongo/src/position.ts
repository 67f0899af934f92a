import { PermanentError, type PositionStore } from '@sluice/core';
import { BSON, type Document } from 'mongodb';
import { decodeResumeToken } from './resume-token.js';

/** How far the initial snapshot got: collections in order, the one being read, the last `_id` read. */
export interface SnapshotProgress {
  collections: string[];
  index: number;
  /** Canonical Extended JSON of the last `_id` copied from `collections[index]`; null before the first. */
  after: string | null;
}

/**
 * The MongoDB source's cursor, what the pipeline acknowledges and the store keeps. `token` is a
 * resume token document (`{ _data, _typeBits? }`); during the initial snapshot it is the point
 * recorded before the copy began, where the stream starts once the copy is done.
 */
export interface MongoCursor {
  token: Document;
  snapshot: SnapshotProgress | null;
}

const VERSION = 1;

/** The stored text: JSON, the token in canonical Extended JSON (its `_typeBits` is binary). */
export function encodePosition(cursor: MongoCursor, database: string): string {
  return JSON.stringify({
    version: VERSION,
    database,
    token: JSON.parse(BSON.EJSON.stringify(cursor.token, { relaxed: false })) as unknown,
    snapshot: cursor.snapshot,
  });
}

/**
 * Reads a stored position, refusing (with the fix) one that is not a position of this database:
 * resuming another database's stream would silently skip or repeat changes.
 */
export function decodePosition(text: string, database: string, where: string): MongoCursor {
  const bad = (detail: string) =>
    new PermanentError(`the stored MongoDB position in ${where} is unusable: ${detail}`, {
      code: 'invalid_position',
      hint: 'delete the entry (nats kv del <bucket> <key>) and start again with SLUICE_SNAPSHOT=initial to take a new snapshot (docs/mongodb.md)',
    });
  let parsed: { version?: unknown; database?: unknown; token?: unknown; snapshot?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw bad('it is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object') throw bad('it is not a JSON object');
  if (parsed.version !== VERSION) throw bad(`unknown version ${JSON.stringify(parsed.version)}`);
  if (parsed.database !== database) {
    throw new PermanentError(
      `the stored MongoDB position in ${where} belongs to database ${JSON.stringify(parsed.database)}, not ${JSON.stringify(database)}`,
      {
        code: 'invalid_position',
        hint: 'give each relay watching another database its own SLUICE_SLOT (the key of its position), or restore SLUICE_MONGODB_DATABASE',
      },
    );
  }
  let token: Document;
  try {
    token = BSON.EJSON.parse(JSON.stringify(parsed.token), { relaxed: false }) as Document;
  } catch {
    throw bad('its token is not Extended JSON');
  }
  if (typeof token['_data'] !== 'string') throw bad('its token has no _data');
  decodeResumeToken(token['_data']);
  const snapshot = parsed.snapshot ?? null;
  if (snapshot !== null) {
    const s = snapshot as Partial<SnapshotProgress>;
    if (
      !Array.isArray(s.collections) ||
      !s.collections.every((c) => typeof c === 'string') ||
      typeof s.index !== 'number' ||
      !(s.after === null || typeof s.after === 'string')
    ) {
      throw bad('its snapshot progress is malformed');
    }
  }
  return { token, snapshot: snapshot as SnapshotProgress | null };
}

/** `_id` values as canonical Extended JSON, so their BSON type survives the round trip. */
export function encodeId(id: unknown): string {
  return BSON.EJSON.stringify({ _id: id }, { relaxed: false });
}

export function decodeId(text: string): unknown {
  return (BSON.EJSON.parse(text, { relaxed: false }) as { _id: unknown })._id;
}

/**
 * Positions kept in this process only: with SLUICE_SINK=stdout there is no JetStream to keep them,
 * so every start begins anew (a snapshot with SLUICE_SNAPSHOT=initial, else "now").
 */
export function memoryPositionStore(): PositionStore {
  let value: string | undefined;
  return {
    description: 'memory (not kept across restarts)',
    async check() {},
    async prepare() {},
    async load() {
      return value;
    },
    async save(position) {
      value = position;
    },
    async close() {},
  };
}
