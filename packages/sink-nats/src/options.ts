import type { Logger, Metrics } from '@sluice/core';
import type { NatsConnectionSettings } from './connection.js';

/** Options of `createNatsSink`. Validation of user input happens in apps/relay's config. */
export interface NatsSinkOptions extends NatsConnectionSettings {
  /** JetStream stream name. Default `SLUICE`. */
  stream?: string;
  /** First subject token(s); the stream captures `<prefix>.>`. Default `sluice`. */
  subjectPrefix?: string;
  /**
   * JetStream dedupe window for `Nats-Msg-Id`. Default 2 h: must cover the longest replay after a
   * crash. A new stream gets it; an existing one must have at least this (it is never changed).
   */
  duplicateWindowMs?: number;
  /**
   * Stream replicas (1 on a single server). Default 1. A new stream gets it; an existing one must
   * have at least this many (it is never changed).
   */
  replicas?: number;
  /**
   * `max_age` of a stream the sink creates, in ms; 0 keeps messages regardless of age. Default
   * 7 days (Kafka's default retention). Never applied to an existing stream.
   */
  maxAgeMs?: number;
  /**
   * `max_bytes` of a stream the sink creates; -1 sets no byte limit (the default, as in Kafka:
   * `maxAgeMs` bounds the stream). Never applied to an existing stream.
   */
  maxBytes?: number;
  /** Stream storage. Default `file`: `memory` loses events when nats-server restarts. */
  storage?: 'file' | 'memory';
  /** How long a publish waits for its PubAck before failing as retriable. Default 5000. */
  ackTimeoutMs?: number;
  /**
   * `commit` (default): messages are stored in the order `publish` is called, through any fault:
   * each expects the previous one as the stream's last message, and the sink resends from the
   * first unconfirmed one itself (see chain.ts). Needs the relay to be the stream's only writer.
   * `key`: no expectations; a failed publish is rejected and the caller retries it.
   */
  ordering?: 'commit' | 'key';
  /**
   * Commit ordering: sends of an event failing with an error the sink cannot classify before it is
   * refused for good (then dead-lettered); recognised transient failures are resent for ever.
   * Default 10. With `key` ordering the caller retries, and its own limit applies.
   */
  maxUnclassifiedAttempts?: number;
  /** Placeholders {prefix}, {aggregatetype}, {type}, {aggregateid}. Default `{prefix}.outbox.{aggregatetype}.{type}`. */
  outboxSubjectTemplate?: string;
  /**
   * CloudEvents binary mode: `ce-*` and `content-type` headers on every message (default true).
   * False: a row change carries only `Nats-Msg-Id` and `Nats-Expected-Stream` (the rest is in its
   * body); an outbox event keeps its type, aggregate id, time and position headers. docs/events.md.
   */
  cloudEvents?: boolean;
  /** CloudEvents `source` attribute, e.g. `/sluice/<database>`. Default `sluice/<stream>`. */
  ceSource?: string;
  /** Connection name shown by `nats server report connections`. Default `sluice`. */
  connectionName?: string;
  /** Bound with `stream` only: pass a child that names the component, as apps/relay does. */
  logger?: Logger;
  metrics?: Metrics;
}

export const DEFAULT_STREAM = 'SLUICE';
export const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60 * 60 * 1000;
export const DEFAULT_ACK_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_MAX_BYTES = -1;
