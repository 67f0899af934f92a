import {
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { AuthorizationError, nanos, PermissionViolationError, TimeoutError } from '@nats-io/transport-node';
import { PermanentError, RetriableError, type SluiceError } from '@sluice/core';
import { isJetStreamNotEnabled, isNoResponders, JsErrCode } from './errors.js';
import { subjectCovers } from './subjects.js';

export interface StreamSpec {
  name: string;
  subjects: string[];
  storage: 'file' | 'memory';
  /** The shortest duplicate window the relay accepts; a new stream gets exactly this. */
  duplicateWindowMs: number;
  /** The fewest replicas the relay accepts; a new stream gets exactly this. */
  replicas: number;
  /** `max_age` of a stream the relay creates; 0: no age limit. Never applied to an existing stream. */
  maxAgeMs: number;
  /** `max_bytes` of a stream the relay creates; -1: no byte limit. Never applied to an existing stream. */
  maxBytes: number;
}

/**
 * `existing`: the stream was there and is left exactly as it was; `notes` say where it differs
 * from the creation settings (for the log).
 */
export interface ProvisionOutcome {
  action: 'created' | 'existing';
  info: StreamInfo;
  notes: string[];
}

/**
 * Reads the stream and, when it exists, checks it against the ownership rules
 * (`checkExistingStream`). Changes nothing: what the relay needs before it creates anything.
 * Resolves with undefined when the stream does not exist yet.
 */
export async function inspectStream(
  jsm: JetStreamManager,
  spec: StreamSpec,
): Promise<{ info: StreamInfo; notes: string[] } | undefined> {
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(spec.name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JsErrCode.StreamNotFound) return undefined;
    throw provisionError(err, spec, 'read');
  }
  return { info, notes: checkExistingStream(info.config, spec) };
}

/**
 * Uses the stream as it is, or creates it when it does not exist. An existing stream is never
 * updated (see `checkExistingStream`); one the relay creates gets the spec's subjects, storage,
 * duplicate window, replicas and retention (`max_age`, `max_bytes`, discard old).
 */
export async function provisionStream(jsm: JetStreamManager, spec: StreamSpec): Promise<ProvisionOutcome> {
  const existing = await inspectStream(jsm, spec);
  if (existing) return { action: 'existing', ...existing };
  const config: Partial<StreamConfig> & { name: string } = {
    name: spec.name,
    description: 'Postgres changes published by Sluice',
    subjects: spec.subjects,
    storage: spec.storage === 'memory' ? StorageType.Memory : StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(spec.duplicateWindowMs),
    num_replicas: spec.replicas,
    max_age: nanos(spec.maxAgeMs),
    max_bytes: spec.maxBytes,
  };
  try {
    return { action: 'created', info: await jsm.streams.add(config), notes: [] };
  } catch (err) {
    // Another relay (or the operator) created it between our read and our add: theirs holds.
    if (err instanceof JetStreamApiError && err.code === JsErrCode.StreamNameExists) {
      return provisionStream(jsm, spec);
    }
    throw provisionError(err, spec, 'create');
  }
}

/** An existing stream the relay cannot use as it is; the message names the change to make. */
export class StreamMismatchError extends PermanentError {
  override name = 'StreamMismatchError';
}

/**
 * The stream ownership rules. An existing stream is the operator's: the relay never changes it.
 * It refuses to start (StreamMismatchError, with the `nats stream edit` command that fixes it)
 * when the stream cannot hold what the relay promises:
 * - its subjects do not cover the relay's subjects (events would have nowhere to go);
 * - its duplicate window is shorter than the relay's (a replay after a crash could store
 *   duplicates);
 * - it has fewer replicas than the relay is configured for (acknowledged events would survive
 *   less than the operator asked the relay to guarantee);
 * - its storage differs, it is a mirror, sealed, or does not acknowledge publishes.
 * A longer window, more replicas, extra subjects and any retention limits are the operator's
 * choice; differences from the creation settings come back as notes for the log.
 */
export function checkExistingStream(cfg: StreamConfig, spec: StreamSpec): string[] {
  const name = spec.name;
  const refuse = (what: string, hint: string) =>
    new StreamMismatchError(`stream ${name} exists but ${what}`, { hint });
  if (cfg.mirror) {
    throw refuse('is a mirror, which does not accept publishes', 'point the sink at a different stream name');
  }
  if (cfg.sealed) {
    throw refuse('is sealed and accepts no more messages', 'point the sink at a different stream name');
  }
  if (cfg.storage !== spec.storage) {
    throw refuse(
      `uses ${cfg.storage} storage while the sink is configured for ${spec.storage}; storage cannot be changed in place`,
      `set the sink's storage to "${cfg.storage}", or delete the stream (nats stream rm ${name}) so it is recreated`,
    );
  }

  const problems: string[] = [];
  const edits: string[] = [];
  const alternatives: string[] = [];
  if (cfg.no_ack) {
    problems.push('it has no_ack set, so publishes are never acknowledged and delivery cannot be confirmed');
    edits.push('--ack');
  }
  const current = cfg.subjects ?? [];
  const uncovered = spec.subjects.filter((s) => !current.some((p) => subjectCovers(p, s)));
  if (uncovered.length > 0) {
    problems.push(
      `its subjects (${current.join(', ') || 'none'}) do not cover ${uncovered.join(', ')}, where the relay publishes`,
    );
    edits.push(`--subjects ${shellQuote([...current, ...uncovered].join(','))}`);
    alternatives.push(
      'point SLUICE_STREAM at a stream that captures them, or set SLUICE_SUBJECT_PREFIX (and SLUICE_OUTBOX_SUBJECT) to subjects this stream captures',
    );
  }
  const window = nanos(spec.duplicateWindowMs);
  if (cfg.duplicate_window < window) {
    const ageTooShort = cfg.max_age > 0 && cfg.max_age < window;
    problems.push(
      `its duplicate window (${formatNanos(cfg.duplicate_window)}) is shorter than the relay's ${formatMs(spec.duplicateWindowMs)}: a replay after a crash older than that would be stored twice` +
        (ageTooShort ? ` (and its max_age, ${formatNanos(cfg.max_age)}, caps the window)` : ''),
    );
    if (ageTooShort) edits.push(`--max-age ${formatMs(spec.duplicateWindowMs)}`);
    edits.push(`--dupe-window ${formatMs(spec.duplicateWindowMs)}`);
    alternatives.push(
      `set SLUICE_DUPLICATE_WINDOW to at most ${formatNanos(cfg.duplicate_window)} if replays older than that cannot happen`,
    );
  }
  if (cfg.num_replicas < spec.replicas) {
    problems.push(
      `it has ${cfg.num_replicas} replica(s), fewer than the ${spec.replicas} the relay is configured for: acknowledged events would not survive the loss of a server as configured`,
    );
    edits.push(`--replicas ${spec.replicas}`);
    alternatives.push(`set SLUICE_STREAM_REPLICAS=${cfg.num_replicas} to accept the stream's replication`);
  }
  if (problems.length > 0) {
    const hint = `the relay never changes a stream it did not create; run: nats stream edit ${name} ${edits.join(' ')}${
      alternatives.length > 0 ? `\n  or ${alternatives.join('; or ')}` : ''
    }`;
    throw new StreamMismatchError(`stream ${name} exists but ${problems.join('; ')}`, { hint });
  }

  const notes: string[] = [];
  const limits: string[] = [];
  if (cfg.max_age !== nanos(spec.maxAgeMs)) limits.push(`max_age ${formatNanos(cfg.max_age)}`);
  if (cfg.max_bytes !== spec.maxBytes)
    limits.push(`max_bytes ${cfg.max_bytes === -1 ? 'unlimited' : cfg.max_bytes}`);
  if (limits.length > 0) {
    notes.push(
      `stream ${name} keeps its own retention (${limits.join(', ')}): SLUICE_STREAM_MAX_AGE and SLUICE_STREAM_MAX_BYTES apply only to a stream the relay creates`,
    );
  }
  if (cfg.num_replicas > spec.replicas) {
    notes.push(
      `stream ${name} keeps its ${cfg.num_replicas} replicas (more than SLUICE_STREAM_REPLICAS=${spec.replicas})`,
    );
  }
  return notes;
}

/** `2h`, `30m`, `90s`, `250ms`: what `nats stream edit` and SLUICE_* durations accept. */
export function formatMs(ms: number): string {
  if (ms === 0) return 'unlimited';
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function formatNanos(ns: number): string {
  return formatMs(Math.round(ns / 1_000_000));
}

/** Single quotes unless the text is plainly safe in a shell (`>` and `*` are not). */
function shellQuote(text: string): string {
  return /^[A-Za-z0-9_.,/-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** Maps stream API failures to errors that name the setting and the fix. */
export function provisionError(err: unknown, spec: StreamSpec, action: string): SluiceError {
  const what = `could not ${action} stream ${spec.name}`;
  if (isJetStreamNotEnabled(err)) {
    return new PermanentError(`${what}: JetStream is not enabled`, {
      cause: err,
      hint: 'start nats-server with -js (or a jetstream {} block in its config), and enable JetStream for the account',
    });
  }
  if (err instanceof TimeoutError || isNoResponders(err)) {
    return new RetriableError(`${what}: the JetStream API did not answer`, {
      cause: err,
      hint: 'check that nats-server is up and runs with JetStream (-js)',
    });
  }
  if (err instanceof PermissionViolationError || err instanceof AuthorizationError) {
    return new PermanentError(`${what}: not authorised: ${err.message}`, {
      cause: err,
      hint: "grant the relay's NATS user access to $JS.API.> (or create the stream yourself with the same settings)",
    });
  }
  if (err instanceof JetStreamApiError) {
    const detail = `${err.message} (err_code ${err.code})`;
    switch (err.code) {
      case JsErrCode.StreamSubjectOverlap:
        return new PermanentError(
          `${what}: ${detail}: another stream already captures ${spec.subjects.join(', ')}`,
          {
            cause: err,
            hint: "set the sink's stream to that stream's name, or change subjectPrefix so the subjects do not overlap",
          },
        );
      case JsErrCode.StreamReplicasNotSupported:
      case JsErrCode.InsufficientResources:
        return new PermanentError(`${what}: ${detail} (replicas=${spec.replicas}, storage=${spec.storage})`, {
          cause: err,
          hint: 'set replicas to at most the number of JetStream servers (1 for a single server), or give JetStream more storage',
        });
      default:
        if (err.status === 503) {
          return new RetriableError(`${what}: JetStream unavailable: ${detail}`, { cause: err });
        }
        return new PermanentError(`${what}: ${detail}`, {
          cause: err,
          hint: 'check the stream settings (stream, duplicateWindowMs, replicas, storage, maxAgeMs, maxBytes) against the server limits',
        });
    }
  }
  return new RetriableError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
