import { readFile } from 'node:fs/promises';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import {
  AuthorizationError,
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  type MsgHdrsImpl,
  type NatsConnection,
  PermissionViolationError,
} from '@nats-io/transport-node';
import {
  type ComponentStatus,
  ConfigError,
  encodeEnvelope,
  type Logger,
  type Metrics,
  noopMetrics,
  PermanentError,
  type RelayEvent,
  RetriableError,
  type Sink,
  type SluiceError,
  silentLogger,
} from '@sluice/core';
import { classifyPublishError, isNoResponders } from './errors.js';
import { changeHeaders, type HeaderContext, outboxHeaders } from './headers.js';
import {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_DUPLICATE_WINDOW_MS,
  DEFAULT_MAX_AGE_MS,
  DEFAULT_MAX_BYTES,
  DEFAULT_STREAM,
  type NatsSinkOptions,
} from './options.js';
import { PubAckCollector } from './pub-acks.js';
import { inspectStream, provisionError, provisionStream, type StreamSpec } from './stream.js';
import { DEFAULT_OUTBOX_SUBJECT_TEMPLATE, SubjectRouter, streamSubjects } from './subjects.js';

export interface NatsSink extends Sink {
  /** What the sink requires of its stream, and creates one with (for tests and `sluice status`). */
  readonly streamSpec: Readonly<StreamSpec>;
}

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
const REPROVISION_RETRY_MS = 5000;

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
  const ctx: HeaderContext = { stream, ceSource: options.ceSource ?? `sluice/${stream}` };
  const log: Logger = (options.logger ?? silentLogger).child({ stream });
  const metrics: Metrics = options.metrics ?? noopMetrics;

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
  /** nats.js closed the connection by itself (it gives up only when refused, e.g. credentials changed). */
  let lost: PermanentError | undefined;

  async function connectionOptions(): Promise<ConnectionOptions> {
    const opts: ConnectionOptions = {
      servers: options.servers,
      name: options.connectionName ?? 'sluice',
      // Without it, nats.js builds an Error with a stack per request: ~50% of publish cost.
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
    };
    if (options.user !== undefined) opts.user = options.user;
    if (options.pass !== undefined) opts.pass = options.pass;
    if (options.token !== undefined) opts.token = options.token;
    if (options.creds !== undefined) {
      let creds: Uint8Array;
      try {
        creds = await readFile(options.creds);
      } catch (err) {
        throw new ConfigError('creds', `cannot read the credentials file ${options.creds}`, {
          cause: err,
          hint: 'point creds at a readable .creds file (nsc generate creds)',
        });
      }
      opts.authenticator = credsAuthenticator(creds);
    }
    return opts;
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
    if (retryTimer !== undefined || nc === undefined || closing) return;
    provision().catch((err: SluiceError) => {
      log.error({ err }, `stream check failed; retrying in ${REPROVISION_RETRY_MS} ms`);
      if (nc === undefined || closing || retryTimer !== undefined) return;
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        reprovision();
      }, REPROVISION_RETRY_MS);
      retryTimer.unref();
    });
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
          // The server may have come back without the stream (new store, other cluster node):
          // not ready until it is checked again.
          streamReady = false;
          problem = `reconnected to ${s.server}; checking stream ${stream}`;
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
      if (err instanceof AuthorizationError) {
        throw new PermanentError(`NATS refused the relay's credentials at ${String(options.servers)}`, {
          cause: err,
          hint: 'check user/pass, token or creds',
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

  function settled(): void {
    inFlight--;
    if (inFlight === 0 && onIdle !== undefined) onIdle();
  }

  return {
    name: 'nats',
    streamSpec: spec,

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
      started = true;
      log.info({ servers: options.servers, subjects: spec.subjects }, 'NATS sink started');
    },

    publish(event: RelayEvent): Promise<void> {
      if (lost !== undefined) return Promise.reject(lost);
      if (acks === undefined || closing) {
        return Promise.reject(
          new RetriableError(
            `NATS sink is ${closing ? 'closing' : 'not started'}; event ${event.id} not published`,
            { code: 'not_connected' },
          ),
        );
      }
      let subject: string;
      let headers: MsgHdrsImpl;
      let body: string;
      try {
        if (event.kind === 'change') {
          const route = router.change(event.schema, event.table, event.op);
          subject = route.subject;
          headers = changeHeaders(event, route, ctx);
        } else {
          subject = router.outbox(event.aggregateType, event.type, event.aggregateId);
          headers = outboxHeaders(event, ctx);
        }
        body = encodeEnvelope(event);
      } catch (err) {
        return Promise.reject(
          err instanceof PermanentError
            ? err
            : new PermanentError(`cannot encode event ${event.id}`, { cause: err }),
        );
      }
      inFlight++;
      // Nats-Msg-Id is already in `headers` (set with the other headers, one map write).
      return acks.publish(subject, body, headers).then(
        () => {
          // A duplicate PubAck means the stream already holds this id: success, not an error.
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
          throw classifyPublishError(err, {
            subject,
            stream,
            eventId: event.id,
            ackTimeoutMs,
            size: () => Buffer.byteLength(body) + headers.encode().length,
            maxPayload: nc?.info?.max_payload,
          });
        },
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
      acks?.close();
      nc = acks = jsm = undefined;
      disconnected = undefined;
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
      if (!streamReady) return { ready: false, detail: problem ?? `checking stream ${stream}` };
      return { ready: true };
    },
  };
}
