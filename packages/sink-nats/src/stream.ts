import {
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
  type StreamUpdateConfig,
} from '@nats-io/jetstream';
import { AuthorizationError, nanos, PermissionViolationError, TimeoutError } from '@nats-io/transport-node';
import { PermanentError, RetriableError, type SluiceError } from '@sluice/core';
import { isJetStreamNotEnabled, isNoResponders, JsErrCode } from './errors.js';
import { subjectCovers } from './subjects.js';

export interface StreamSpec {
  name: string;
  subjects: string[];
  storage: 'file' | 'memory';
  duplicateWindowMs: number;
  replicas: number;
}

export type ProvisionOutcome = {
  action: 'created' | 'unchanged' | 'updated';
  info: StreamInfo;
  changed: string[];
};

/**
 * Creates the stream, or brings an existing one up to the spec without clobbering it: subjects
 * are added (never removed), the duplicate window and replicas are set, and anything that
 * cannot be changed in place (storage) or would break delivery (mirror, sealed, no_ack) is
 * reported with the fix.
 */
export async function provisionStream(jsm: JetStreamManager, spec: StreamSpec): Promise<ProvisionOutcome> {
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(spec.name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JsErrCode.StreamNotFound)) {
      throw provisionError(err, spec, 'read');
    }
  }
  if (info === undefined) {
    const config: Partial<StreamConfig> & { name: string } = {
      name: spec.name,
      description: 'Postgres changes published by Sluice',
      subjects: spec.subjects,
      storage: spec.storage === 'memory' ? StorageType.Memory : StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(spec.duplicateWindowMs),
      num_replicas: spec.replicas,
    };
    try {
      return { action: 'created', info: await jsm.streams.add(config), changed: [] };
    } catch (err) {
      // Another relay created it between our info and add: converge on the update path.
      if (err instanceof JetStreamApiError && err.code === JsErrCode.StreamNameExists) {
        return provisionStream(jsm, spec);
      }
      throw provisionError(err, spec, 'create');
    }
  }

  const cfg = info.config;
  const refuse = (what: string, hint: string) =>
    new PermanentError(`stream ${spec.name} exists but ${what}`, { hint });
  if (cfg.storage !== spec.storage) {
    throw refuse(
      `uses ${cfg.storage} storage while the sink is configured for ${spec.storage}; storage cannot be changed in place`,
      `set the sink's storage to "${cfg.storage}", or delete the stream (nats stream rm ${spec.name}) so it is recreated`,
    );
  }
  if (cfg.mirror) {
    throw refuse('is a mirror, which does not accept publishes', 'point the sink at a different stream name');
  }
  if (cfg.sealed) {
    throw refuse('is sealed and accepts no more messages', 'point the sink at a different stream name');
  }
  if (cfg.no_ack) {
    throw refuse(
      'has no_ack set, so publishes are never acknowledged and delivery cannot be confirmed',
      `nats stream edit ${spec.name} --no-ack=false, or point the sink at another stream`,
    );
  }

  const update: Partial<StreamUpdateConfig> = {};
  const changed: string[] = [];
  const current = cfg.subjects ?? [];
  const missing = spec.subjects.filter((s) => !current.some((p) => subjectCovers(p, s)));
  if (missing.length > 0) {
    update.subjects = [...current, ...missing];
    changed.push(`subjects +${missing.join(',')}`);
  }
  const window = nanos(spec.duplicateWindowMs);
  if (cfg.duplicate_window !== window) {
    update.duplicate_window = window;
    changed.push(`duplicate_window ${cfg.duplicate_window}ns → ${window}ns`);
  }
  if (cfg.num_replicas !== spec.replicas) {
    update.num_replicas = spec.replicas;
    changed.push(`num_replicas ${cfg.num_replicas} → ${spec.replicas}`);
  }
  if (changed.length === 0) return { action: 'unchanged', info, changed };
  try {
    return { action: 'updated', info: await jsm.streams.update(spec.name, update), changed };
  } catch (err) {
    throw provisionError(err, spec, `update (${changed.join('; ')})`);
  }
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
          hint: 'check the stream settings (stream, duplicateWindowMs, replicas, storage) against the server limits',
        });
    }
  }
  return new RetriableError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
