import { JetStreamApiError } from '@nats-io/jetstream';
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from '@nats-io/transport-node';
import { PermanentError, RetriableError, type SluiceError } from '@sluice/core';

/** JetStream API error codes (nats-server `server/errors.json`) this sink reacts to. */
export const JsErrCode = {
  JetStreamNotEnabled: 10076,
  JetStreamNotEnabledForAccount: 10039,
  StreamNotFound: 10059,
  StreamSubjectOverlap: 10065,
  StreamMessageExceedsMaximum: 10054,
  StreamStoreFailed: 10077,
  StreamNotMatch: 10060,
  StreamReplicasNotSupported: 10074,
  InsufficientResources: 10023,
  StreamNameExists: 10058,
  /** `Nats-Expected-Last-Msg-Id` did not match: "wrong last msg ID: <the stream's last id>". */
  StreamWrongLastMsgId: 10070,
  /** `Nats-Expected-Last-Sequence` did not match: "wrong last sequence: <the stream's last seq>". */
  StreamWrongLastSequence: 10071,
} as const;

export interface PublishContext {
  subject: string;
  stream: string;
  eventId: string;
  ackTimeoutMs: number;
  /** Bytes of body plus headers, computed only when the error needs it. */
  size: () => number;
  maxPayload: number | undefined;
}

/** nats.js reports "no responders" wrapped once or twice (RequestError, JetStreamNotEnabled). */
export function isNoResponders(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof NoRespondersError) return true;
    if (e instanceof RequestError && e.isNoResponders()) return true;
  }
  return false;
}

/** JetStream is off on the server or for the account (nats.js does not export the class). */
export function isJetStreamNotEnabled(err: unknown): boolean {
  if (err instanceof JetStreamApiError) {
    return err.code === JsErrCode.JetStreamNotEnabled || err.code === JsErrCode.JetStreamNotEnabledForAccount;
  }
  return err instanceof Error && err.name === 'JetStreamNotEnabled';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Sorts a js.publish failure into retriable (the same event may be stored later: the server is
 * away or slow) and permanent (this event can never be stored as it is, or the stream refuses
 * it until a person changes a limit).
 */
export function classifyPublishError(err: unknown, ctx: PublishContext): SluiceError {
  const where = `publishing event ${ctx.eventId} to ${ctx.subject} (stream ${ctx.stream})`;
  if (err instanceof TimeoutError) {
    return new RetriableError(`${where}: no PubAck within ${ctx.ackTimeoutMs} ms`, {
      cause: err,
      code: 'timeout',
      hint: 'check that nats-server is reachable and JetStream is healthy; raise ackTimeoutMs if the server is slow under load',
    });
  }
  if (isNoResponders(err)) {
    return new RetriableError(`${where}: no JetStream stream answered (503 no responders)`, {
      cause: err,
      code: 'no_responders',
      hint: `check that stream ${ctx.stream} exists and captures ${ctx.subject} (the sink creates it at start) and that nats-server runs with JetStream (-js)`,
    });
  }
  if (
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    err instanceof ConnectionError
  ) {
    return new RetriableError(`${where}: the NATS connection is ${describe(err)}`, {
      cause: err,
      code: 'disconnected',
      hint: 'check that nats-server is reachable from the relay',
    });
  }
  if (err instanceof InvalidArgumentError && /max_payload/.test(err.message)) {
    return new PermanentError(
      `${where}: the message is ${ctx.size()} bytes with headers, over the server's max_payload of ${ctx.maxPayload ?? '?'} bytes`,
      {
        cause: err,
        code: 'too_large',
        hint: 'raise max_payload in the nats-server config (and max_msg_size of the stream), or make the row / outbox payload smaller',
      },
    );
  }
  if (err instanceof InvalidArgumentError) {
    return new PermanentError(`${where}: nats.js refused the message: ${err.message}`, {
      cause: err,
      code: 'invalid',
    });
  }
  if (err instanceof PermissionViolationError || err instanceof AuthorizationError) {
    return new PermanentError(`${where}: not authorised: ${err.message}`, {
      cause: err,
      code: 'not_authorized',
      hint: `grant the relay's NATS user publish permission on ${ctx.subject} and $JS.API.>`,
    });
  }
  if (err instanceof JetStreamApiError) {
    return classifyApiError(err, where, ctx);
  }
  // Unknown failures are retried: retrying a stored event is harmless (Nats-Msg-Id dedupes),
  // dead-lettering a deliverable one is not.
  return new RetriableError(`${where}: ${describe(err)}`, { cause: err, code: 'unknown' });
}

function classifyApiError(err: JetStreamApiError, where: string, ctx: PublishContext): SluiceError {
  const detail = `${err.message} (err_code ${err.code})`;
  switch (err.code) {
    case JsErrCode.StreamMessageExceedsMaximum:
      return new PermanentError(`${where}: ${detail}: the message is ${ctx.size()} bytes`, {
        cause: err,
        code: 'too_large',
        hint: `raise max_msg_size of stream ${ctx.stream} (nats stream edit ${ctx.stream} --max-msg-size) or make the row / payload smaller`,
      });
    case JsErrCode.StreamStoreFailed:
      return new PermanentError(`${where}: ${detail}`, {
        cause: err,
        code: 'stream_full',
        hint: `stream ${ctx.stream} is full and discards new messages: raise max_msgs / max_bytes or use discard policy "old"`,
      });
    case JsErrCode.StreamNotMatch:
      return new PermanentError(`${where}: ${detail}: another stream captures ${ctx.subject}`, {
        cause: err,
        code: 'wrong_stream',
        hint: `remove ${ctx.subject} from the other stream's subjects, or set the sink's stream to that stream`,
      });
    default:
      // 503 from JetStream means "temporarily unavailable" (leader election, restart).
      if (err.status === 503) {
        return new RetriableError(`${where}: JetStream unavailable: ${detail}`, {
          cause: err,
          code: 'jetstream_unavailable',
          hint: 'check nats-server health (nats server check jetstream)',
        });
      }
      return new PermanentError(`${where}: JetStream refused the message: ${detail}`, {
        cause: err,
        code: 'rejected',
      });
  }
}

/**
 * Whether a failed publish is sent again: a retriable failure the sink recognises (timeout, no
 * responders, disconnected, JetStream unavailable) always; one it could not classify (`unknown`)
 * until it has been sent `maxUnclassifiedAttempts` times, after which it counts as refused for good
 * (dead-lettered). As the pipeline does with `retry.maxUnclassifiedAttempts` (SLUICE_DLQ_MAX_ATTEMPTS).
 */
export function sendsAgain(err: SluiceError, attempts: number, maxUnclassifiedAttempts: number): boolean {
  return err instanceof RetriableError && (err.code !== 'unknown' || attempts < maxUnclassifiedAttempts);
}
