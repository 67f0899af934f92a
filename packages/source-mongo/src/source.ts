import { createHash } from 'node:crypto';
import {
  type ChangeEvent,
  type ComponentStatus,
  isRetriable,
  type Logger,
  type Metrics,
  noopMetrics,
  PermanentError,
  type PositionStore,
  type Source,
  type SourceOutput,
  silentLogger,
} from '@sluice/core';
import type { OutboxColumns } from '@sluice/outbox';
import { type ChangeStream, type Db, type Document, MongoClient, type MongoClientOptions } from 'mongodb';
import { documentToRow } from './bson-json.js';
import { type ChangeStreamEvent, type MappingContext, mapChangeEvent } from './change-event.js';
import { classifyMongoError } from './errors.js';
import {
  decodeId,
  decodePosition,
  encodeId,
  encodePosition,
  type MongoCursor,
  type SnapshotProgress,
} from './position.js';
import { decodeResumeToken, formatClusterTime } from './resume-token.js';

export interface MongoSourceOptions {
  /** `mongodb://` or `mongodb+srv://` URL of a replica set or sharded cluster (change streams need an oplog). */
  url: string;
  database: string;
  /** Collections to capture; null: every collection of the database. */
  collections: readonly string[] | null;
  /** The outbox collection of `database` and the fields its documents use, or null. */
  outbox: { collection: string; columns: OutboxColumns } | null;
  /** `initial`: copy the existing documents (as `read` events) before streaming, when no position is stored. */
  snapshot: 'initial' | 'never';
  snapshotChunkSize: number;
  /** Where the acknowledged position is kept (a JetStream KV entry in the relay). */
  positions: PositionStore;
  logger?: Logger;
  metrics?: Metrics;
  /** On stop: resolves once the pipeline delivered what was pushed, so the final position can be stored. */
  drainOnStop?: () => Promise<void>;
  /** How long one getMore waits for changes (the latency of noticing a stop). Default 1000. */
  maxAwaitTimeMs?: number;
  /** Extra driver options (tests: timeouts). */
  clientOptions?: MongoClientOptions;
}

export interface MongoSource extends Source<MongoCursor> {
  /** Read-only start-up checks: replica set, privileges, the position store. */
  check(): Promise<void>;
  /** Resolves once every acknowledged position is stored (or the store keeps failing). */
  flush(): Promise<void>;
}

// Read with Int64 kept as Long (never a JS number) and regexes as BSONRegExp (every flag kept).
const BSON_OPTIONS = { promoteLongs: false, promoteValues: true, bsonRegExp: true } as const;

const RETRY_MAX_MS = 30_000;

export function createMongoSource(options: MongoSourceOptions): MongoSource {
  return new MongoChangeStreamSource(options);
}

class MongoChangeStreamSource implements MongoSource {
  readonly name = 'mongodb';
  readonly #o: MongoSourceOptions;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #shownUrl: string;
  #client: MongoClient | undefined;
  #preImages = false;
  #status: ComponentStatus = { ready: false, detail: 'starting' };
  /** Newest acknowledged cursor, and the newest one stored. */
  #acknowledged: MongoCursor | undefined;
  #stored: MongoCursor | undefined;
  #saving: Promise<void> | undefined;
  #saveFailures = 0;

  constructor(options: MongoSourceOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? noopMetrics;
    this.#shownUrl = redactUrl(options.url);
  }

  status(): ComponentStatus {
    return this.#status;
  }

  async check(): Promise<void> {
    this.#log.info({ url: this.#shownUrl, database: this.#o.database }, 'checking MongoDB');
    const db = await this.#connect('connecting');
    const hello = await this.#call('checking the server', () => db.admin().command({ hello: 1 }));
    if (typeof hello['setName'] !== 'string' && hello['msg'] !== 'isdbgrid') {
      throw new PermanentError(
        `MongoDB at ${this.#shownUrl} is a standalone server: change streams need a replica set`,
        {
          code: 'standalone',
          hint: 'start mongod with --replSet <name> and run rs.initiate() (a one-member replica set is enough), or point SLUICE_MONGODB_URL at a replica set or mongos',
        },
      );
    }
    const info = await this.#call('reading the server version', () => db.admin().command({ buildInfo: 1 }));
    const [major = 0] = String(info['version'] ?? '0')
      .split('.')
      .map(Number);
    // fullDocumentBeforeChange exists from 6.0; 'whenAvailable' gives null where a collection keeps no pre-images.
    this.#preImages = major >= 6;
    // Opening (and closing) a change stream proves the changeStream and find privileges.
    await this.#highWaterMark(db);
    if (this.#o.collections !== null) await this.#warnMissing(db);
    await this.#o.positions.check();
  }

  async run(output: SourceOutput<MongoCursor>, signal: AbortSignal): Promise<void> {
    try {
      const db = await this.#retry('connecting', () => this.#connect('connecting'), signal);
      await this.#retry('preparing the position store', () => this.#o.positions.prepare(), signal);
      let cursor = await this.#retry('loading the stored position', () => this.#load(), signal);
      if (cursor === undefined) cursor = await this.#begin(db, signal);
      if (cursor.snapshot !== null && !signal.aborted) {
        const done = await this.#snapshot(db, cursor.token, cursor.snapshot, output, signal);
        if (done) cursor = { token: cursor.token, snapshot: null };
      }
      if (!signal.aborted) await this.#stream(db, cursor.token, output, signal);
    } finally {
      this.#status = { ready: false, detail: 'stopping' };
      await this.#stop();
    }
  }

  acknowledge(cursor: MongoCursor): void {
    this.#acknowledged = cursor;
    this.#saving ??= this.#saveLoop();
  }

  async flush(): Promise<void> {
    for (let attempt = 0; attempt < 5 && this.#acknowledged !== this.#stored; attempt++) {
      this.#saving ??= this.#saveLoop();
      await this.#saving;
    }
  }

  // --- position -----------------------------------------------------------------------------

  async #load(): Promise<MongoCursor | undefined> {
    const text = await this.#o.positions.load();
    if (text === undefined) return undefined;
    const cursor = decodePosition(text, this.#o.database, this.#o.positions.description);
    this.#stored = cursor;
    this.#log.info(
      {
        position: this.#o.positions.description,
        clusterTime: clusterTimeOf(cursor.token),
        snapshot: cursor.snapshot !== null,
      },
      cursor.snapshot === null
        ? 'resuming the change stream after the stored position'
        : 'resuming the initial snapshot',
    );
    return cursor;
  }

  /**
   * No position yet: record where the stream starts before anything is read, and store it at once,
   * so a crash before the first acknowledgement resumes there rather than at a later "now".
   */
  async #begin(db: Db, signal: AbortSignal): Promise<MongoCursor> {
    const token = await this.#retry(
      'recording the start of the change stream',
      () => this.#highWaterMark(db),
      signal,
    );
    const snapshot: SnapshotProgress | null =
      this.#o.snapshot === 'initial'
        ? {
            collections: await this.#retry(
              'listing collections',
              () => this.#snapshotCollections(db),
              signal,
            ),
            index: 0,
            after: null,
          }
        : null;
    const cursor: MongoCursor = { token, snapshot };
    await this.#retry(
      'storing the start position',
      () => this.#o.positions.save(encodePosition(cursor, this.#o.database)),
      signal,
    );
    this.#stored = cursor;
    this.#log.info(
      {
        position: this.#o.positions.description,
        clusterTime: clusterTimeOf(token),
        snapshotCollections: snapshot?.collections.length ?? 0,
      },
      snapshot === null
        ? 'no stored position: streaming from now'
        : 'no stored position: initial snapshot, then streaming from before it',
    );
    return cursor;
  }

  async #saveLoop(): Promise<void> {
    try {
      while (this.#acknowledged !== undefined && this.#acknowledged !== this.#stored) {
        const cursor = this.#acknowledged;
        await this.#o.positions.save(encodePosition(cursor, this.#o.database));
        this.#stored = cursor;
        this.#saveFailures = 0;
        this.#metrics.mongoAcknowledgedTime(clusterSeconds(cursor.token));
      }
    } catch (err) {
      this.#saveFailures++;
      this.#log.warn(
        { err, failures: this.#saveFailures },
        `storing the MongoDB position in ${this.#o.positions.description} failed; retrying with the next acknowledgement`,
      );
      // Wait a little so a dead store is not hammered by every acknowledgement.
      await delay(Math.min(1000 * this.#saveFailures, 10_000));
    } finally {
      this.#saving = undefined;
    }
  }

  // --- snapshot -----------------------------------------------------------------------------

  async #snapshotCollections(db: Db): Promise<string[]> {
    if (this.#o.collections !== null)
      return this.#o.collections.filter((c) => c !== this.#o.outbox?.collection);
    const infos = await db.listCollections({ type: 'collection' }, { nameOnly: true }).toArray();
    return infos
      .map((c) => c.name)
      .filter((name) => !name.startsWith('system.') && name !== this.#o.outbox?.collection)
      .sort();
  }

  /**
   * Copies each collection by `_id` ranges (index order, across BSON types: `min` + `hint`), each
   * chunk's cursor committed as snapshot progress. Returns false when stopped before the end.
   */
  async #snapshot(
    db: Db,
    start: Document,
    progress: SnapshotProgress,
    output: SourceOutput<MongoCursor>,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { database, snapshotChunkSize: chunk } = this.#o;
    const startData = start['_data'] as string;
    const clusterTime = decodeResumeToken(startData).clusterTime;
    this.#status = {
      ready: false,
      detail: `initial snapshot of ${progress.collections.length} collection(s)`,
    };
    for (let index = progress.index; index < progress.collections.length; index++) {
      const name = progress.collections[index] as string;
      const collection = db.collection(name);
      let after =
        index === progress.index && progress.after !== null
          ? { text: progress.after, id: decodeId(progress.after) }
          : null;
      const estimate = await this.#retry(
        `counting ${database}.${name}`,
        () => collection.estimatedDocumentCount(),
        signal,
      );
      this.#metrics.snapshotEstimate(database, name, estimate);
      let copied = 0;
      this.#log.info(
        { collection: name, estimate, resumeAfter: after?.text ?? null },
        'snapshot: copying collection',
      );
      for (;;) {
        if (signal.aborted) return false;
        const from = after;
        const docs = await this.#retry(
          `reading ${database}.${name}`,
          () =>
            collection
              .find(
                {},
                from === null
                  ? { sort: { _id: 1 }, hint: { _id: 1 }, limit: chunk }
                  : { sort: { _id: 1 }, hint: { _id: 1 }, min: { _id: from.id }, limit: chunk + 1 },
              )
              .toArray(),
          signal,
        );
        // `min` is inclusive: drop the document the previous chunk ended with.
        if (from !== null && docs.length > 0 && encodeId(docs[0]?.['_id']) === from.text) docs.shift();
        if (docs.length === 0) break;
        for (const doc of docs) {
          await output.push(readEvent(database, name, doc, startData, clusterTime));
        }
        const last = docs[docs.length - 1]?.['_id'];
        after = { text: encodeId(last), id: last };
        copied += docs.length;
        output.commit({
          token: start,
          snapshot: { collections: progress.collections, index, after: after.text },
        });
        this.#metrics.snapshotRows(database, name, docs.length);
        if (estimate > 0) this.#metrics.snapshotProgress(database, name, Math.min(copied / estimate, 0.99));
        if (docs.length < chunk) break;
      }
      this.#metrics.snapshotProgress(database, name, 1);
      output.commit({
        token: start,
        snapshot: { collections: progress.collections, index: index + 1, after: null },
      });
      this.#log.info({ collection: name, documents: copied }, 'snapshot: collection copied');
    }
    output.commit({ token: start, snapshot: null });
    return true;
  }

  // --- streaming ----------------------------------------------------------------------------

  async #stream(
    db: Db,
    from: Document,
    output: SourceOutput<MongoCursor>,
    signal: AbortSignal,
  ): Promise<void> {
    const ctx: MappingContext = { database: this.#o.database, outbox: this.#o.outbox };
    let token = from;
    let failures = 0;
    while (!signal.aborted) {
      const stream = this.#open(db, token);
      try {
        for (;;) {
          if (signal.aborted) return;
          const doc = await stream.tryNext();
          if (signal.aborted) return;
          if (!this.#status.ready) {
            this.#status = { ready: true };
            this.#log.info(
              { clusterTime: clusterTimeOf(token), reopened: failures > 0 },
              'streaming from the MongoDB change stream',
            );
          }
          failures = 0;
          if (doc === null) {
            // No change in this getMore: the stream's high-water mark moved on; store it too, so a
            // quiet database on a busy cluster keeps its position inside the oplog window.
            const hwm = stream.resumeToken as Document | null;
            if (hwm !== null && hwm['_data'] !== token['_data']) {
              token = hwm;
              output.commit({ token, snapshot: null });
              this.#metrics.mongoReceivedTime(clusterSeconds(token));
            }
            continue;
          }
          const mapped = mapChangeEvent(doc as unknown as ChangeStreamEvent, ctx);
          if (mapped.event !== null) await output.push(mapped.event);
          token = doc['_id'] as Document;
          output.commit({ token, snapshot: null });
          this.#metrics.mongoReceivedTime(clusterSeconds(token));
          if (mapped.invalidate) {
            // The stream is over; startAfter (unlike resumeAfter) may start after an invalidate.
            this.#log.warn(
              { clusterTime: clusterTimeOf(token) },
              'change stream invalidated (database dropped or renamed); reopening after it',
            );
            break;
          }
        }
      } catch (raw) {
        const err = classifyMongoError(raw, 'reading the change stream', this.#shownUrl);
        if (!isRetriable(err) || signal.aborted) throw err;
        failures++;
        this.#metrics.reconnect('mongodb');
        const wait = Math.min(500 * 2 ** (failures - 1), RETRY_MAX_MS);
        this.#status = { ready: false, detail: `reconnecting: ${err.message.split('\n')[0]}` };
        this.#log.warn({ err, retryInMs: wait }, 'change stream failed; reopening after the last event read');
        await delay(wait, signal);
      } finally {
        await stream.close().catch(() => {});
      }
    }
  }

  #open(db: Db, token: Document): ChangeStream {
    const names = this.#o.collections;
    const pipeline: Document[] = [];
    if (names !== null) {
      const watched = this.#o.outbox === null ? [...names] : [...names, this.#o.outbox.collection];
      pipeline.push({
        $match: {
          $or: [{ 'ns.coll': { $in: watched } }, { operationType: { $in: ['dropDatabase', 'invalidate'] } }],
        },
      });
    }
    return db.watch(pipeline, {
      startAfter: token,
      fullDocument: 'updateLookup',
      ...(this.#preImages ? { fullDocumentBeforeChange: 'whenAvailable' } : {}),
      maxAwaitTimeMS: this.#o.maxAwaitTimeMs ?? 1000,
      ...BSON_OPTIONS,
    });
  }

  /**
   * The stream's position now, without reading an event: a change stream cursor opened with an
   * empty first batch returns its postBatchResumeToken, a high-water mark token.
   */
  async #highWaterMark(db: Db): Promise<Document> {
    const reply = await this.#call('opening a change stream', () =>
      db.command({ aggregate: 1, pipeline: [{ $changeStream: {} }], cursor: { batchSize: 0 } }),
    );
    const cursor = reply['cursor'] as { id?: unknown; postBatchResumeToken?: Document } | undefined;
    const token = cursor?.postBatchResumeToken;
    if (cursor?.id !== undefined && String(cursor.id) !== '0') {
      await db.command({ killCursors: '$cmd.aggregate', cursors: [cursor.id] }).catch(() => {});
    }
    if (token === undefined || typeof token['_data'] !== 'string') {
      throw new PermanentError(`MongoDB at ${this.#shownUrl} returned no postBatchResumeToken`, {
        hint: 'Sluice needs MongoDB 4.2 or later',
      });
    }
    return token;
  }

  async #warnMissing(db: Db): Promise<void> {
    const existing = (
      await this.#call('listing collections', () => db.listCollections({}, { nameOnly: true }).toArray())
    ).map((c) => c.name);
    for (const name of this.#o.collections ?? []) {
      if (existing.includes(name)) continue;
      const similar = existing.find((e) => e.toLowerCase() === name.toLowerCase());
      this.#log.warn(
        { collection: name, database: this.#o.database },
        `collection ${this.#o.database}.${name} does not exist yet${similar ? ` (did you mean ${similar}?)` : ''}; its changes are captured once it is created`,
      );
    }
  }

  // --- plumbing -----------------------------------------------------------------------------

  async #connect(what: string): Promise<Db> {
    if (this.#client === undefined) {
      const client = new MongoClient(this.#o.url, {
        appName: 'sluice',
        serverSelectionTimeoutMS: 10_000,
        ...BSON_OPTIONS,
        ...this.#o.clientOptions,
      });
      try {
        await client.connect();
      } catch (err) {
        await client.close().catch(() => {});
        throw classifyMongoError(err, what, this.#shownUrl);
      }
      this.#client = client;
    }
    return this.#client.db(this.#o.database, BSON_OPTIONS);
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classifyMongoError(err, what, this.#shownUrl);
    }
  }

  /** `fn` until it succeeds; retriable failures wait with capped backoff, the rest reject. */
  async #retry<T>(what: string, fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (raw) {
        const err = classifyMongoError(raw, what, this.#shownUrl);
        if (!isRetriable(err) || signal.aborted) throw err;
        const wait = Math.min(500 * 2 ** (attempt - 1), RETRY_MAX_MS);
        this.#status = { ready: false, detail: `${what}: ${err.message.split('\n')[0]}` };
        this.#metrics.reconnect('mongodb');
        this.#log.warn({ err, retryInMs: wait }, `${what} failed; retrying`);
        await delay(wait, signal);
        if (signal.aborted) throw err;
      }
    }
  }

  async #stop(): Promise<void> {
    try {
      await this.#o.drainOnStop?.();
    } catch (err) {
      this.#log.warn(
        { err },
        'pipeline did not drain; the undelivered events are read again after a restart',
      );
    }
    await this.flush();
    const client = this.#client;
    this.#client = undefined;
    await client?.close().catch(() => {});
  }
}

/** A snapshot read: deterministic id (start point, collection, `_id`), so a re-read after a restart dedupes. */
function readEvent(
  database: string,
  collection: string,
  doc: Document,
  startData: string,
  clusterTime: { t: number; i: number },
): ChangeEvent {
  const idText = encodeId(doc['_id']);
  const hash = createHash('sha256')
    .update(`${startData}\u0000${collection}\u0000${idText}`)
    .digest('hex')
    .slice(0, 40);
  const after = documentToRow(doc);
  return {
    kind: 'change',
    id: `mongo-read:${hash}`,
    op: 'read',
    schema: database,
    table: collection,
    key: { _id: after['_id'] ?? null },
    before: null,
    after,
    unchanged: [],
    source: {
      lsn: startData,
      commitLsn: formatClusterTime(clusterTime),
      xid: null,
      commitTime: new Date(clusterTime.t * 1000).toISOString(),
      seq: 0,
      snapshot: startData,
    },
  };
}

/** The token's cluster time in Unix seconds (the increment as a fraction keeps it monotonic within a second). */
function clusterSeconds(token: Document): number {
  const data = token['_data'];
  if (typeof data !== 'string') return 0;
  const { t, i } = decodeResumeToken(data).clusterTime;
  return t + Math.min(i, 999_999) / 1_000_000;
}

function clusterTimeOf(token: Document): string {
  const data = token['_data'];
  return typeof data === 'string' ? formatClusterTime(decodeResumeToken(data).clusterTime) : 'unknown';
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^(mongodb(?:\+srv)?:\/\/[^:/@]*):[^@/]*@/, '$1:***@');
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
