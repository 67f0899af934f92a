import {
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  type StoredMsg,
} from '@nats-io/jetstream';
import {
  AuthorizationError,
  type ConnectionOptions,
  connect,
  headers as createHeaders,
  type MsgHdrs,
  MsgHdrsImpl,
  type NatsConnection,
  PermissionViolationError,
} from '@nats-io/transport-node';
import {
  type ComponentStatus,
  ConfigError,
  certificateFailure,
  encodeEnvelope,
  type Logger,
  type Metrics,
  noopMetrics,
  PermanentError,
  type PositionStore,
  type RelayEvent,
  RetriableError,
  type Sink,
  type SluiceError,
  silentLogger,
  WithdrawnError,
} from '@sluice/core';
import { type ChainLink, type Expectation, type Outcome, PublishChain, type StreamLast } from './chain.js';
import { natsConnectionOptions } from './connection.js';
import { classifyPublishError, isNoResponders, JsErrCode, sendsAgain } from './errors.js';
import { headerBytes } from './header-bytes.js';
import { EncodedHeaders, Header, HeaderEncoder } from './headers.js';
import { createKvPositionStore, type KvPositionStoreOptions } from './kv-position-store.js';
import { streamInfoFromLeader } from './leader-info.js';
import {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_DUPLICATE_WINDOW_MS,
  DEFAULT_MAX_AGE_MS,
  DEFAULT_MAX_BYTES,
  DEFAULT_STREAM,
  type NatsSinkOptions,
} from './options.js';
import { PubAckCollector } from './pub-acks.js';
import { atOrBefore, type ReplayPosition, ReplaySkip, replayPosition } from './replay-position.js';
import { oldServerWarning } from './server-version.js';
import { inspectStream, provisionError, provisionStream, type StreamSpec } from './stream.js';
import { DEFAULT_OUTBOX_SUBJECT_TEMPLATE, SubjectRouter, streamSubjects } from './subjects.js';

/** A message as the sink publishes it: what a dead letter keeps, and what a replay publishes again. */
export interface NatsMessage {
  subject: string;
  /** Every header, `Nats-Msg-Id` included. */
  headers: Record<string, string>;
  body: string;
}

export interface NatsSink extends Sink {
  /** What the sink requires of its stream, and creates one with (for tests and `sluice status`). */
  readonly streamSpec: Readonly<StreamSpec>;
  /** A source position kept in a KV bucket on the sink's connection (MongoDB resume tokens). */
  positionStore(options: KvPositionStoreOptions): PositionStore;
  /**
   * The message `publish(event)` sends, without sending it; throws a PermanentError when it cannot
   * be built (the same error `publish` rejects with).
   */
  message(event: RelayEvent): NatsMessage;
  /**
   * Publishes a message kept earlier (`sluice dlq replay`), with its own `Nats-Msg-Id`, classified
   * like `publish`. Needs `check()` (or `start()`) first.
   */
  publishMessage(message: NatsMessage): Promise<void>;
}

function headerRecord(h: MsgHdrs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of h.keys()) out[key] = h.get(key);
  return out;
}

type Done<T> = (token: T, err: Error | undefined) => void;

/**
 * A message of the commit-order chain: built once, resent as it is with its expectation. Answers
 * its publisher through `done(token, …)`: no promise or closure per event (see Sink.deliver).
 */
class Link implements ChainLink {
  /** Sends so far: an error nobody classified is retried only so often (then dead-lettered). */
  attempts = 0;

  constructor(
    readonly id: string,
    readonly event: RelayEvent,
    readonly subject: string,
    /** The body's bytes, made once and sent as they are by every resend. */
    readonly body: Buffer,
    /**
     * The header block without the expectation (added per send: it changes with the anchor), as
     * the event's own lines in text and the rest in bytes (see Built).
     */
    readonly lines: string,
    readonly block: Buffer,
    readonly token: unknown,
    /** Called with `token`: the caller's own pair, so any token type fits (see `link`). */
    readonly done: Done<unknown>,
    /** The sink's count of publishes in flight. */
    readonly settled: () => void,
  ) {}

  resolve(): void {
    this.settled();
    this.done(this.token, undefined);
  }

  reject(err: Error): void {
    this.settled();
    this.done(this.token, err);
  }
}

interface PromiseHandle {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** `publish` on top of `deliver`. */
const settlePromise: Done<PromiseHandle> = (handle, err) => {
  if (err === undefined) handle.resolve();
  else handle.reject(err);
};

/** Sends of an event failing with an error nobody classified, when the options do not say. */
const DEFAULT_MAX_UNCLASSIFIED_ATTEMPTS = 10;

interface LocatedLast extends StreamLast {
  readonly message?: StoredMsg | undefined;
}

const WRONG_LAST_ID = /wrong last msg ?id:?\s*(.*)$/i;
const WRONG_LAST_SEQ = /wrong last sequence:?\s*(\d+)/i;

function positiveInt(setting: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError(setting, `expected an integer from ${min} and up, got ${value}`);
  }
  return value;
}

/** `max_age` and `max_bytes` of a stream the sink creates, checked against the duplicate window. */
function retention(options: NatsSinkOptions, duplicateWindowMs: number) {
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  if (!Number.isInteger(maxAgeMs) || maxAgeMs < 0) {
    throw new ConfigError('maxAgeMs', `expected an integer from 0 (no age limit) and up, got ${maxAgeMs}`);
  }
  if (maxAgeMs > 0 && maxAgeMs < duplicateWindowMs) {
    throw new ConfigError(
      'maxAgeMs',
      `${maxAgeMs} ms is shorter than the duplicate window (${duplicateWindowMs} ms), which JetStream does not allow`,
      { hint: 'keep messages at least as long as the duplicate window, or shorten the window' },
    );
  }
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isInteger(maxBytes) || (maxBytes < 1 && maxBytes !== -1)) {
    throw new ConfigError('maxBytes', `expected -1 (no byte limit) or a positive integer, got ${maxBytes}`);
  }
  return { maxAgeMs, maxBytes };
}

const ignore = () => undefined;
const EMPTY = Buffer.alloc(0);
/** Closes a header block. */
const BLANK_LINE = Buffer.from('\r\n');
const REPROVISION_RETRY_MS = 5000;
/** Publish failures that mean the stream is not storing anything now: the sink is not ready. */
const UNANSWERED_CODES = new Set(['timeout', 'jetstream_unavailable', 'no_responders']);

/**
 * A Sink that publishes each event to JetStream with `Nats-Msg-Id` = event id, so a replay after
 * a crash is stored once. `publish` issues the request synchronously: many publishes issued in
 * one tick leave in one socket write (see PERF-NOTES: awaiting between publishes costs 2x).
 */
export function createNatsSink(options: NatsSinkOptions): NatsSink {
  const stream = options.stream ?? DEFAULT_STREAM;
  if (!/^[^\s.*>/\\]+$/.test(stream)) {
    throw new ConfigError('stream', `"${stream}" is not a valid stream name`, {
      hint: 'use letters, digits, "_" and "-" (no spaces, dots, "*", ">", "/" or "\\")',
    });
  }
  const router = new SubjectRouter(options);
  const template = options.outboxSubjectTemplate ?? DEFAULT_OUTBOX_SUBJECT_TEMPLATE;
  const duplicateWindowMs = positiveInt(
    'duplicateWindowMs',
    options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS,
    1000,
  );
  const spec: StreamSpec = {
    name: stream,
    subjects: streamSubjects(router.prefix, template),
    storage: options.storage ?? 'file',
    duplicateWindowMs,
    replicas: positiveInt('replicas', options.replicas ?? 1, 1),
    ...retention(options, duplicateWindowMs),
  };
  const ackTimeoutMs = positiveInt('ackTimeoutMs', options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS, 1);
  const maxUnclassifiedAttempts = positiveInt(
    'maxUnclassifiedAttempts',
    options.maxUnclassifiedAttempts ?? DEFAULT_MAX_UNCLASSIFIED_ATTEMPTS,
    1,
  );
  const ceSource = options.ceSource ?? `sluice/${stream}`;
  const cloudEvents = options.cloudEvents ?? true;
  const encoder = new HeaderEncoder({ stream, ceSource, cloudEvents });
  // One wrapper for every publish: nats.js reads the bytes synchronously inside publish().
  const encoded = new EncodedHeaders();
  const log: Logger = (options.logger ?? silentLogger).child({ stream });
  const metrics: Metrics = options.metrics ?? noopMetrics;
  const ordering = options.ordering ?? 'commit';
  if (ordering !== 'commit' && ordering !== 'key') {
    throw new ConfigError('ordering', `expected "commit" or "key", got ${JSON.stringify(ordering)}`);
  }

  let nc: NatsConnection | undefined;
  let acks: PubAckCollector | undefined;
  let jsm: JetStreamManager | undefined;
  let streamReady = false;
  /** check() passed on the current connection: start() only creates what is missing. */
  let checked = false;
  let started = false;
  let closing = false;
  /** Set while the connection is down: what /readyz shows first. */
  let disconnected: string | undefined;
  /** Why the sink is not ready apart from the connection (start failure, stream check). */
  let problem: string | undefined = 'not started';
  let provisioning: Promise<void> | undefined;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  /**
   * Set while publishes go unanswered (PubAck timeouts, JetStream unavailable) on a connection
   * that is up: a cluster without quorum, or a stream whose leader is unreachable, accepts the
   * connection but stores nothing. Set too by a reconnect with publishes outstanding. Cleared by
   * the next PubAck, or by a stream check that finds a leader while nothing waits for a PubAck.
   */
  let unanswered: string | undefined;
  /** The last stream check found a replicated stream without a leader. Cleared by a PubAck too. */
  let leaderless: string | undefined;
  /** nats.js closed the connection by itself (it gives up only when refused, e.g. credentials changed). */
  let lost: PermanentError | undefined;
  /** Said once per sink, not at every reconnect. */
  let warnedOldServer = false;
  /** Commit ordering: the publish chain, created at start from the stream's last message. */
  let chain: PublishChain<Link> | undefined;
  /** Commit ordering, after a start: recognises replayed events the stream already holds. */
  let skip: ReplaySkip | undefined;

  async function connectionOptions(): Promise<ConnectionOptions> {
    return {
      ...(await natsConnectionOptions(options)),
      name: options.connectionName ?? 'sluice',
      // Without it, nats.js builds an Error with a stack per request: ~50% of publish cost.
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
    };
  }

  /** Single-flight: start() and every reconnect re-check the stream (it may have been deleted). */
  function provision(): Promise<void> {
    if (provisioning !== undefined) return provisioning;
    provisioning = (async () => {
      try {
        if (nc === undefined) throw new RetriableError('NATS sink is not connected');
        jsm ??= await jetstreamManager(nc);
        const outcome = await provisionStream(jsm, spec);
        streamReady = true;
        problem = undefined;
        const cluster = outcome.info.cluster;
        if (cluster !== undefined && (outcome.info.config.num_replicas ?? 1) > 1 && !cluster.leader) {
          // Without quorum a replica answers the stream check with its own view: the stream is
          // there, but nothing can be stored until it has a leader. Checked again until it has one
          // (or a PubAck says so first), so an idle relay becomes ready too.
          leaderless = `stream ${stream} has no leader (no quorum among its replicas?); checking again`;
          recheckSoon();
        } else {
          leaderless = undefined;
          // A leader in the answer is the leader's own view: one that just lost its quorum still
          // says so for seconds. With publishes waiting, only their PubAcks prove the stream
          // stores; an idle relay has nothing better than this check.
          if (inFlight === 0) unanswered = undefined;
        }
        if (outcome.action === 'created') {
          log.info(
            {
              subjects: spec.subjects,
              duplicateWindowMs: spec.duplicateWindowMs,
              replicas: spec.replicas,
              maxAgeMs: spec.maxAgeMs,
              maxBytes: spec.maxBytes,
            },
            `created stream ${stream}`,
          );
          if (spec.maxAgeMs === 0 && spec.maxBytes === -1) {
            log.warn(
              {},
              `stream ${stream} has no age or byte limit: it grows until JetStream's storage is full`,
            );
          }
        } else {
          log.debug({ subjects: outcome.info.config.subjects }, `stream ${stream} exists and fits`);
        }
        const oldServer = oldServerWarning(nc.info?.version, outcome.info.config.num_replicas ?? 1);
        if (oldServer !== undefined && !warnedOldServer) {
          warnedOldServer = true;
          log.warn({ server: nc.info?.version }, oldServer);
        }
      } catch (err) {
        streamReady = false;
        const e =
          err instanceof PermanentError || err instanceof RetriableError
            ? err
            : provisionError(err, spec, 'provision');
        problem = e.message;
        throw e;
      } finally {
        provisioning = undefined;
      }
    })();
    return provisioning;
  }

  /** Background re-check after a reconnect or a "no responders" publish; retries until it works. */
  function reprovision(): void {
    // One check at a time, and one log line per failed check (not one per failed publish).
    if (retryTimer !== undefined || provisioning !== undefined || nc === undefined || closing) return;
    provision().catch((err: SluiceError) => {
      log.error({ err }, `stream check failed; retrying in ${REPROVISION_RETRY_MS} ms`);
      recheckSoon();
    });
  }

  function recheckSoon(): void {
    if (nc === undefined || closing || retryTimer !== undefined) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      reprovision();
    }, REPROVISION_RETRY_MS);
    retryTimer.unref();
  }

  async function watchStatus(conn: NatsConnection): Promise<void> {
    for await (const s of conn.status()) {
      switch (s.type) {
        case 'disconnect':
          disconnected = `disconnected from NATS at ${s.server}; reconnecting`;
          log.warn({ server: s.server }, 'NATS disconnected');
          break;
        case 'reconnect':
          disconnected = undefined;
          // Reconnecting to a cluster node proves nothing about the stream's quorum (the node we
          // left may have gone with it): with publishes outstanding, not ready until a PubAck.
          // The server may have come back without the stream (new store, other cluster node):
          // not ready until it is checked again.
          streamReady = false;
          problem = `reconnected to ${s.server}; checking stream ${stream}`;
          if (inFlight > 0) {
            unanswered ??= `reconnected to ${s.server} with ${inFlight} publish(es) unacknowledged; ready at the next PubAck`;
          }
          metrics.reconnect('nats');
          log.info({ server: s.server }, 'NATS reconnected');
          reprovision();
          break;
        case 'error':
          log.error({ err: s.error }, 'NATS connection error');
          if (s.error instanceof PermissionViolationError) acks?.denied(s.error);
          break;
        case 'ldm':
          log.warn({ server: s.server }, 'NATS server entering lame-duck mode; will move to another server');
          break;
        case 'staleConnection':
          log.warn({}, 'NATS connection stale (missed pings); reconnecting');
          break;
        case 'slowConsumer':
          log.warn({ pending: s.pending }, 'NATS slow consumer');
          break;
        default:
          break;
      }
    }
  }

  /**
   * With unlimited reconnect attempts nats.js closes a connection only when the server keeps
   * refusing it (credentials changed or revoked): every later publish would fail "retriably" for
   * ever. Fail them permanently instead, so the relay stops and says why.
   */
  function watchClosed(conn: NatsConnection): void {
    void conn.closed().then((err) => {
      if (closing || nc !== conn) return;
      lost = new PermanentError(
        `the NATS connection to ${String(options.servers)} was closed for good${err ? `: ${err.message}` : ''}`,
        {
          cause: err,
          code: 'closed',
          hint: 'check the credentials (user/pass, token, creds) and permissions of the relay, then restart it',
        },
      );
      problem = lost.message;
      log.error({ err }, 'NATS connection closed for good; publishes fail until the relay is restarted');
      acks?.close();
    });
  }

  /** Connects unless connected; the connection stays for start() and publishing. */
  async function connectOnce(): Promise<void> {
    if (nc !== undefined) return;
    closing = false;
    let conn: NatsConnection;
    try {
      conn = await connect(await connectionOptions());
    } catch (err) {
      problem = `cannot connect to ${String(options.servers)}`;
      if (err instanceof ConfigError) throw err;
      const certificate = certificateFailure(err);
      if (certificate) {
        throw new PermanentError(
          `the NATS server certificate at ${String(options.servers)} does not verify (${certificate})`,
          {
            cause: err,
            code: 'tls',
            hint: 'SLUICE_NATS_TLS_CA must hold the CA that signed the server certificate, and the URL host must be a name the certificate holds',
          },
        );
      }
      if (err instanceof Error && /does not support 'tls'/i.test(err.message)) {
        throw new PermanentError(`the NATS server at ${String(options.servers)} does not offer TLS`, {
          cause: err,
          code: 'tls',
          hint: 'enable TLS on the server (a tls { cert_file, key_file } block), or unset SLUICE_NATS_TLS_CA / SLUICE_NATS_TLS_CERT to connect without it',
        });
      }
      if (err instanceof AuthorizationError) {
        throw new PermanentError(`NATS refused the relay's credentials at ${String(options.servers)}`, {
          cause: err,
          hint: 'check the user and password, token, nkey seed or creds the relay signs in with (SLUICE_NATS_*)',
        });
      }
      if (err instanceof Error && /unable to parse credentials/.test(err.message)) {
        throw new ConfigError('creds', 'the NATS credentials cannot be read as a .creds file', {
          cause: err,
          hint: 'give the file `nsc generate creds` wrote (a user JWT block and a seed block)',
        });
      }
      throw new RetriableError(`cannot connect to NATS at ${String(options.servers)}`, {
        cause: err,
        hint: 'check the servers setting and that nats-server is running and reachable',
      });
    }
    nc = conn;
    disconnected = undefined;
    acks = new PubAckCollector(conn, ackTimeoutMs);
    lost = undefined;
    watchStatus(conn).catch((err: unknown) => log.error({ err }, 'NATS status watcher stopped'));
    watchClosed(conn);
  }

  /** After a failed check or start: the next attempt connects afresh. */
  async function disconnect(conn: NatsConnection): Promise<void> {
    if (nc !== conn) return;
    acks?.close();
    nc = acks = jsm = undefined;
    checked = started = false;
    await conn.close().catch(ignore);
  }

  /** Connects and checks JetStream and the stream, creating nothing. */
  async function check(): Promise<void> {
    if (checked) return;
    await connectOnce();
    const conn = nc as NatsConnection;
    try {
      // jetstreamManager asks for the account's JetStream info: it fails when JetStream is off.
      jsm ??= await jetstreamManager(conn).catch((err: unknown) => {
        throw provisionError(err, spec, 'check');
      });
      const existing = await inspectStream(jsm, spec);
      if (existing === undefined) {
        log.info({ subjects: spec.subjects }, `stream ${stream} does not exist yet: it is created at start`);
      } else {
        for (const note of existing.notes) log.info({}, note);
      }
      checked = true;
      problem = 'checked, not started';
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
      await disconnect(conn);
      throw err;
    }
  }

  /**
   * Where a stored message sits in commit order, if this relay's kind of source wrote it: with
   * CloudEvents headers, their `ce-source` must be the relay's; without (`SLUICE_CLOUDEVENTS=off`)
   * a row change carries its position only in its body.
   */
  function positionOf(message: StoredMsg): ReplayPosition | undefined {
    const h = message.header;
    if (cloudEvents) {
      if (h?.get(Header.CeSource) !== ceSource) return undefined;
      return replayPosition(h.get(Header.CommitLsn), h.get(Header.Seq));
    }
    if (h?.has(Header.CommitLsn)) return replayPosition(h.get(Header.CommitLsn), h.get(Header.Seq));
    try {
      const source = (message.json() as { source?: { commitLsn?: unknown; seq?: unknown } }).source;
      if (typeof source?.commitLsn !== 'string' || typeof source.seq !== 'number') return undefined;
      return replayPosition(source.commitLsn, source.seq);
    } catch {
      return undefined;
    }
  }

  /** The stream's last message (its id and position tell where a restarted relay stands). */
  async function locate(head?: Link): Promise<LocatedLast> {
    if (nc === undefined) throw new RetriableError('NATS sink is not connected');
    jsm ??= await jetstreamManager(nc);
    // The leader's view: a lagging replica's would look like lost acknowledged messages.
    const info = await streamInfoFromLeader(nc, stream, ackTimeoutMs);
    const seq = info.state.last_seq;
    if (seq === 0 || info.state.messages === 0) return { seq, id: undefined, empty: true };
    const message = await jsm.streams.getMessage(stream, { seq });
    // Removed between the two requests (max_age, a purge): ask again.
    if (message === null)
      throw new RetriableError(`the last message of stream ${stream} (seq ${seq}) is gone`);
    const id = message.header?.get(Header.MsgId);
    // Written by a Sluice publisher with this relay's source, at a position before the chain's head:
    // a dead letter (and its parked events) that `sluice dlq replay` published late.
    const position = positionOf(message);
    const headAt = head && replayPosition(head.event.source.commitLsn, head.event.source.seq);
    const adoptable = position !== undefined && headAt !== undefined && atOrBefore(position, headAt) === true;
    return { seq, id: id === '' ? undefined : id, subject: message.subject, message, adoptable };
  }

  /**
   * Where a (re)started relay stands: warns when the stream's last message is older than the
   * duplicate window (replayed events cannot be deduplicated by Nats-Msg-Id), and in commit mode
   * sets up skipping replayed events by position.
   */
  function resumeFrom(last: LocatedLast): void {
    skip = undefined;
    const message = last.message;
    if (message === undefined) return;
    const position = positionOf(message);
    if (ordering === 'commit' && position !== undefined) skip = new ReplaySkip(position, last.id);
    const ageMs = Date.now() - message.time.getTime();
    if (ageMs > duplicateWindowMs) {
      metrics.dedupeWindowExceeded();
      log.warn(
        {
          lastSeq: last.seq,
          lastId: last.id,
          storedAt: message.time.toISOString(),
          duplicateWindowMs,
          commitLsn: message.header?.get(Header.CommitLsn),
        },
        ordering === 'commit' && position !== undefined
          ? `the stream's last message is older than the duplicate window: replayed events cannot be deduplicated by Nats-Msg-Id; they are recognised by position instead (events at or before commit ${message.header?.get(Header.CommitLsn)} seq ${message.header?.get(Header.Seq)} are skipped), so nothing is stored twice`
          : `the stream's last message is older than the duplicate window: events the relay replays from before the crash may be stored a second time (set SLUICE_ORDERING=commit to deduplicate a replay by position, or lengthen SLUICE_DUPLICATE_WINDOW)`,
      );
    }
  }

  /** Sorts a publish's answer for the chain. */
  function outcome(err: unknown, link: Link): Outcome {
    if (err instanceof JetStreamApiError) {
      if (err.code === JsErrCode.StreamWrongLastMsgId) {
        return { kind: 'wrong-last-id', lastId: (WRONG_LAST_ID.exec(err.message)?.[1] ?? '').trim() };
      }
      if (err.code === JsErrCode.StreamWrongLastSequence) {
        return { kind: 'wrong-last-seq', lastSeq: Number(WRONG_LAST_SEQ.exec(err.message)?.[1] ?? -1) };
      }
    }
    if (isNoResponders(err)) {
      streamReady = false;
      problem = `stream ${stream} did not answer a publish (no responders); checking it`;
      reprovision();
    }
    const e = classifyPublishError(err, {
      subject: link.subject,
      stream,
      eventId: link.id,
      ackTimeoutMs,
      size: () => link.body.length + Buffer.byteLength(link.lines) + link.block.length,
      maxPayload: nc?.info?.max_payload,
    });
    if (UNANSWERED_CODES.has(e.code ?? '')) {
      unanswered = `stream ${stream} does not acknowledge publishes (${e.code}: no quorum, its leader unreachable, or the stream gone?); retrying`;
    }
    if (sendsAgain(e, link.attempts, maxUnclassifiedAttempts)) {
      return { kind: 'retry', reason: e.code ?? 'unknown', error: e };
    }
    if (e instanceof RetriableError) {
      // Refused, so the chain moves on only once it is dead-lettered: the pipeline must not retry it.
      return {
        kind: 'refused',
        error: new PermanentError(`${e.message} (${link.attempts} attempts)`, { cause: e, code: 'unknown' }),
      };
    }
    return { kind: 'refused', error: e };
  }

  function sendLink(link: Link, expect: Expectation, done: (outcome: Outcome) => void): void {
    link.attempts++;
    const a = acks;
    if (a === undefined || lost !== undefined) {
      const error = lost ?? new RetriableError(`NATS sink is not connected; event ${link.id} not published`);
      // Answered on a later turn, like a PubAck, so a round never recurses into the next one.
      queueMicrotask(() =>
        done(lost ? { kind: 'refused', error } : { kind: 'retry', reason: 'not_connected', error }),
      );
      return;
    }
    // Ids are free of CR/LF (checked when the header block was built).
    encoded.bytes =
      'lastMsgId' in expect
        ? headerBytes(link.lines, Header.ExpectedLastMsgId, expect.lastMsgId, link.block)
        : headerBytes(link.lines, Header.ExpectedLastSeq, String(expect.lastSeq), link.block);
    a.send(link.subject, link.body, encoded, (err, ack) => {
      if (err === undefined && ack !== undefined) {
        unanswered = leaderless = undefined;
        done({ kind: 'stored', seq: ack.seq, duplicate: ack.duplicate === true });
      } else {
        done(outcome(err, link));
      }
    });
  }

  function newChain(): PublishChain<Link> {
    return new PublishChain<Link>(stream, {
      io: {
        send: sendLink,
        locate,
        schedule(fn, delayMs) {
          const timer = setTimeout(fn, delayMs);
          return () => clearTimeout(timer);
        },
      },
      events: {
        resend(reason, resent, delayMs, cause) {
          for (let i = 0; i < resent; i++) metrics.publishRetry(reason);
          log.warn(
            { err: cause, reason, resent, delayMs },
            `publishing failed; retrying: resending ${resent} unconfirmed message(s) from the first one, in commit order (${reason})`,
          );
        },
        lostAcknowledged(last, count) {
          metrics.publishError('lost_acknowledged');
          log.error(
            { lastSeq: last.seq, lastId: last.id, lost: count },
            `stream ${stream} lost ${count} message(s) JetStream had acknowledged (a nats-server whose store had not synced them crashed): continuing after its last message ${last.id}; use a stream with 3 replicas to make acknowledged messages survive a server's crash`,
          );
        },
        adopted(last) {
          log.warn(
            { lastSeq: last.seq, lastId: last.id },
            `stream ${stream} got message ${last.id} from another Sluice publisher (sluice dlq replay): continuing after it`,
          );
        },
        restartedEmpty() {
          log.warn({}, `stream ${stream} is empty (deleted, purged or expired): continuing from its start`);
        },
      },
    });
  }

  /** Why nothing can be published now, or undefined. */
  function unavailable(event: RelayEvent): Error | undefined {
    if (lost !== undefined) return lost;
    if (acks === undefined || closing) {
      return new RetriableError(
        `NATS sink is ${closing ? 'closing' : 'not started'}; event ${event.id} not published`,
        { code: 'not_connected' },
      );
    }
    return undefined;
  }

  function settled(): void {
    inFlight--;
    if (inFlight === 0 && onIdle !== undefined) onIdle();
  }

  interface Built {
    subject: string;
    /**
     * The header block in wire format is `lines` (text: `NATS/1.0` and a row change's own lines, or
     * an outbox event's every line) then `block` (bytes: a route's constant lines and the blank line
     * that closes the block): the chain writes them once per send, its expectation after `lines`.
     */
    lines: string;
    block: Buffer;
    body: string;
  }

  /** The header block of `built` as one buffer. */
  function headerBlock(built: Built): Buffer {
    return Buffer.concat([Buffer.from(built.lines), built.block]);
  }

  function build(event: RelayEvent): Built {
    try {
      if (event.kind === 'change') {
        const route = router.change(event.schema, event.table, event.op);
        return {
          subject: route.subject,
          lines: encoder.changeLines(event),
          block: encoder.routeBlock(route),
          body: encodeEnvelope(event),
        };
      }
      const subject = router.outbox(event.aggregateType, event.type, event.aggregateId);
      return { subject, lines: encoder.outboxLines(event), block: BLANK_LINE, body: encodeEnvelope(event) };
    } catch (err) {
      throw err instanceof PermanentError
        ? err
        : new PermanentError(`cannot encode event ${event.id}`, { cause: err, code: 'unbuildable' });
    }
  }

  /**
   * Nats-Msg-Id is already in `headers` (set with the other headers, one map write). nats.js checks
   * the message against the server's `max_payload` (from the server's INFO) before it writes
   * anything and throws synchronously: an oversize event never reaches the socket, and comes back
   * as a PermanentError `too_large` (dead-lettered by the relay).
   */
  function send(
    collector: PubAckCollector,
    subject: string,
    headers: Uint8Array,
    text: string,
    eventId: string,
  ): Promise<void> {
    // Buffer.from takes its memory from Node's pool: far less GC than nats.js's TextEncoder.encode.
    const body = Buffer.from(text);
    encoded.bytes = headers;
    inFlight++;
    return collector.publish(subject, body, encoded).then(
      () => {
        // A duplicate PubAck means the stream already holds this id: success, not an error.
        unanswered = leaderless = undefined;
        settled();
      },
      (err: unknown) => {
        settled();
        if (isNoResponders(err)) {
          // The stream is gone or not answering: not ready until it is checked (and re-created).
          streamReady = false;
          problem = `stream ${stream} did not answer a publish (no responders); checking it`;
          reprovision();
        }
        const classified = classifyPublishError(err, {
          subject,
          stream,
          eventId,
          ackTimeoutMs,
          size: () => body.length + headers.length,
          maxPayload: nc?.info?.max_payload,
        });
        if (UNANSWERED_CODES.has(classified.code ?? '')) {
          unanswered = `stream ${stream} does not acknowledge publishes (${classified.code}: no quorum, its leader unreachable, or the stream gone?); retrying`;
        }
        throw classified;
      },
    );
  }

  return {
    name: 'nats',
    streamSpec: spec,
    keepsCallOrder: ordering === 'commit',

    hold(event: RelayEvent) {
      chain?.hold(new Link(event.id, event, '', EMPTY, '', EMPTY, undefined, ignore, ignore));
    },

    setAside(event: RelayEvent, withdraw?: (later: RelayEvent) => boolean) {
      chain?.setAside(
        event.id,
        withdraw && ((link) => withdraw(link.event)),
        (link) => new WithdrawnError(link.id),
      );
    },

    positionStore(storeOptions) {
      return createKvPositionStore(async () => {
        await connectOnce();
        return nc as NatsConnection;
      }, storeOptions);
    },

    check,

    async start() {
      if (started) return;
      if (!checked) await check();
      const conn = nc as NatsConnection;
      try {
        await provision();
      } catch (err) {
        await disconnect(conn);
        throw err;
      }
      try {
        const last = await locate();
        resumeFrom(last);
        if (ordering === 'commit') {
          chain?.close(new RetriableError('NATS sink restarted'));
          chain = newChain();
          chain.begin(last);
        }
      } catch (err) {
        await disconnect(conn);
        throw err instanceof PermanentError || err instanceof RetriableError
          ? err
          : new RetriableError(`cannot read the last message of stream ${stream}`, { cause: err });
      }
      started = true;
      log.info({ servers: options.servers, subjects: spec.subjects, ordering }, 'NATS sink started');
    },

    publish(event: RelayEvent): Promise<void> {
      if (ordering !== 'commit') {
        const problem = unavailable(event);
        if (problem !== undefined) return Promise.reject(problem);
        let built: Built;
        try {
          built = build(event);
        } catch (err) {
          return Promise.reject(err);
        }
        return send(acks as PubAckCollector, built.subject, headerBlock(built), built.body, event.id);
      }
      return new Promise<void>((resolve, reject) => {
        this.deliver?.(event, { resolve, reject }, settlePromise);
      });
    },

    deliver<T>(event: RelayEvent, token: T, done: Done<T>): void {
      if (ordering !== 'commit') {
        this.publish(event).then(
          () => done(token, undefined),
          (err: unknown) => done(token, err instanceof Error ? err : new Error(String(err))),
        );
        return;
      }
      const problem = unavailable(event);
      if (problem !== undefined) {
        done(token, problem);
        return;
      }
      let built: Built;
      try {
        built = build(event);
      } catch (err) {
        done(token, err as Error);
        return;
      }
      if (chain === undefined) {
        done(
          token,
          new RetriableError(`NATS sink is not started; event ${event.id} not published`, {
            code: 'not_connected',
          }),
        );
        return;
      }
      if (skip !== undefined) {
        if (skip.stored(event.id, replayPosition(event.source.commitLsn, event.source.seq))) {
          done(token, undefined);
          return;
        }
        if (skip.done) skip = undefined;
      }
      inFlight++;
      chain.add(
        new Link(
          event.id,
          event,
          built.subject,
          // Buffer.from takes its memory from Node's pool: far less GC than TextEncoder.encode.
          Buffer.from(built.body),
          built.lines,
          built.block,
          token,
          done as Done<unknown>,
          settled,
        ),
      );
    },

    message(event: RelayEvent): NatsMessage {
      const built = build(event);
      return {
        subject: built.subject,
        headers: headerRecord(MsgHdrsImpl.decode(headerBlock(built))),
        body: built.body,
      };
    },

    publishMessage(message: NatsMessage): Promise<void> {
      if (lost !== undefined) return Promise.reject(lost);
      if (acks === undefined || closing) {
        return Promise.reject(new RetriableError('NATS sink is not connected', { code: 'not_connected' }));
      }
      const h = createHeaders();
      for (const [key, value] of Object.entries(message.headers)) h.set(key, value);
      return send(
        acks,
        message.subject,
        (h as MsgHdrsImpl).encode(),
        message.body,
        message.headers['Nats-Msg-Id'] ?? '?',
      );
    },

    async close() {
      const conn = nc;
      if (conn === undefined || closing) return;
      closing = true;
      // Draining unsubscribes the reply inbox: let PubAcks already on their way arrive first.
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ackTimeoutMs);
          onIdle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        onIdle = undefined;
      }
      chain?.close(new RetriableError('NATS sink closed', { code: 'closed' }));
      chain = skip = undefined;
      acks?.close();
      nc = acks = jsm = undefined;
      disconnected = unanswered = leaderless = undefined;
      streamReady = checked = started = false;
      problem = 'closed';
      clearTimeout(retryTimer);
      retryTimer = undefined;
      // A server that hangs (or a blackholed link) never answers the drain's flush; nats.js would
      // only notice at its stale-connection check, minutes later. Give it the ack timeout, then close.
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        conn.drain().then(
          () => true,
          () => false,
        ),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), ackTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (!drained) await conn.close().catch(ignore);
      log.info({}, 'NATS sink closed');
    },

    status(): ComponentStatus {
      if (nc === undefined) return { ready: false, detail: problem ?? 'not started' };
      if (lost !== undefined) return { ready: false, detail: lost.message };
      if (disconnected !== undefined) return { ready: false, detail: disconnected };
      if (unanswered !== undefined) return { ready: false, detail: unanswered };
      if (leaderless !== undefined) return { ready: false, detail: leaderless };
      if (!streamReady) return { ready: false, detail: problem ?? `checking stream ${stream}` };
      return { ready: true };
    },
  };
}
