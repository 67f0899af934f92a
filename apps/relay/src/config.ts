import { readFileSync } from 'node:fs';
import {
  ColumnRuleError,
  ConfigError,
  columnRulesFromConfig,
  formatTableName,
  type QualifiedName,
  quoteEntry,
  sameTable,
  splitTableList,
  type TableColumnRules,
  TableNameError,
  tableNameFromConfig,
} from '@sluice/core';
import { type OutboxColumns, resolveColumns } from '@sluice/outbox';
import { subjectFor } from '@sluice/sink-nats';
import { resolvePollColumns } from '@sluice/source-outbox-poll';
import { HEARTBEAT_PREFIX, WATERMARK_PREFIX } from '@sluice/source-postgres';
import { z } from 'zod';
import { parseBytes } from './bytes.js';
import { parseDuration } from './duration.js';
import { parseNatsServers } from './nats-url.js';
import { SETTINGS, type SettingKey, type SettingSpec, settingByKey } from './settings.js';

export type TableRef = QualifiedName;

const IDENT = /^[A-Za-z_][A-Za-z0-9_$]*$/;
const SLOT = /^[a-z0-9_]{1,63}$/;

function durationMs(opts: { min: number }) {
  return z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < opts.min) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration like 500ms, 30s, 2h${opts.min > 0 ? ` (at least ${opts.min} ms)` : ''}, got "${text}"`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

/** A duration in ms, or `unlimited` (0, JetStream's "no limit"). */
const maxAge = z.string().transform((text, ctx) => {
  if (text.trim().toLowerCase() === 'unlimited') return 0;
  const ms = parseDuration(text);
  if (ms === undefined || ms < 1000) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like 7d, 12h or 30m (at least 1s), or unlimited, got "${text}"`,
    });
    return z.NEVER;
  }
  return ms;
});

/** A byte size, or `unlimited` (-1, JetStream's "no limit"). */
const maxBytes = z.string().transform((text, ctx) => {
  if (text.trim().toLowerCase() === 'unlimited') return -1;
  const bytes = parseBytes(text);
  if (bytes === undefined || bytes < 1024 * 1024) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size like 10GiB, 500MB or 1073741824 (at least 1MiB), or unlimited, got "${text}"`,
    });
    return z.NEVER;
  }
  return bytes;
});

/** One of `values`; the error echoes what was given, like the other settings do. */
function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (issue) => `expected one of ${values.join(', ')}, got ${JSON.stringify(issue.input)}`,
  });
}

function integer(min: number, max: number) {
  return z.string().transform((text, ctx) => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected an integer from ${min} to ${max}, got "${text}"` });
      return z.NEVER;
    }
    return n;
  });
}

function bool() {
  return z.string().transform((text, ctx) => {
    const v = text.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    ctx.addIssue({ code: 'custom', message: `expected true or false, got "${text}"` });
    return z.NEVER;
  });
}

/** `none` (any case) switches a feature off. */
const isNone = (text: string) => text.trim().toLowerCase() === 'none';

/** The entry as the user wrote it, for messages: the text itself, or the config file's JSON. */
const entryText = (entry: unknown) => (typeof entry === 'string' ? entry.trim() : JSON.stringify(entry));

/** Reads one table; a bad one becomes an issue quoting the entry, and undefined. */
function readTable(entry: unknown, ctx: z.RefinementCtx): TableRef | undefined {
  try {
    return tableNameFromConfig(entry);
  } catch (err) {
    if (!(err instanceof TableNameError)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message });
    return undefined;
  }
}

/**
 * SLUICE_TABLES: a comma list of names written as in SQL (`Public.Orders`, `public."Order Items"`);
 * the config file may also give an array of such strings and exact `{ "schema", "table" }` objects.
 */
const tableList = z.unknown().transform((value, ctx) => {
  const entries: unknown[] =
    typeof value === 'string' ? splitTableList(value) : Array.isArray(value) ? value : [value];
  const tables: TableRef[] = [];
  const seen = new Map<string, unknown>();
  for (const entry of entries) {
    const table = readTable(entry, ctx);
    if (!table) continue;
    const key = `${table.schema}\u0000${table.table}`;
    const first = seen.get(key);
    if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `${quoteEntry(entryText(entry))} names ${formatTableName(table)}, which ${quoteEntry(entryText(first))} already names; list each table once`,
      });
      continue;
    }
    seen.set(key, entry);
    tables.push(table);
  }
  return tables;
});

/** SLUICE_COLUMNS: `table: rules; table: rules` (the config file may give `{ table: [rules] }`). */
const columnRules = z.unknown().transform((value, ctx): TableColumnRules[] => {
  if (value === '' || value === undefined) return [];
  try {
    return columnRulesFromConfig(value);
  } catch (err) {
    if (!(err instanceof ColumnRuleError)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message });
    return z.NEVER;
  }
});

/** SLUICE_OUTBOX_TABLE: one name written as in SQL (the config file may give `{ schema, table }`), or none. */
const outboxTable = z.unknown().transform((value, ctx): TableRef | null => {
  if (typeof value === 'string' && isNone(value)) return null;
  return readTable(value, ctx) ?? z.NEVER;
});

/** Setting keys of SLUICE_OUTBOX_COLUMNS: the default column names, lower case. */
const COLUMN_KEYS: Record<string, keyof OutboxColumns> = {
  id: 'id',
  aggregatetype: 'aggregateType',
  aggregateid: 'aggregateId',
  type: 'type',
  payload: 'payload',
  headers: 'headers',
};

/** Columns only poll mode reads (the order it polls in, the event time, the published mark). */
export interface PollColumnOverrides {
  txid?: string;
  position?: string;
  /** null: the table has no creation time column. */
  createdAt?: string | null;
  publishedAt?: string;
}

const POLL_COLUMN_KEYS: Record<string, keyof PollColumnOverrides> = {
  txid: 'txid',
  position: 'position',
  created_at: 'createdAt',
  published_at: 'publishedAt',
};

/** Keys that may be empty: the table has no such column. */
const OPTIONAL_COLUMNS = new Set(['headers', 'created_at']);

export interface OutboxColumnSettings {
  /** The event columns, resolved (Debezium's names unless overridden). */
  event: OutboxColumns;
  /**
   * The event columns SLUICE_OUTBOX_COLUMNS names. A named column must exist; the optional
   * `headers` column, left unnamed, is read only when the table has it.
   */
  given: Partial<OutboxColumns>;
  /** Poll-mode columns named in the setting; the poll source fills in its defaults. */
  poll: PollColumnOverrides;
}

const ALL_COLUMN_KEYS = [...Object.keys(COLUMN_KEYS), ...Object.keys(POLL_COLUMN_KEYS)].join(', ');

const outboxColumns = z.string().transform((text, ctx): OutboxColumnSettings => {
  const event: Partial<OutboxColumns> = {};
  const poll: PollColumnOverrides = {};
  const seen = new Set<string>();
  let ok = true;
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    ok = false;
  };
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = (eq === -1 ? item : item.slice(0, eq)).trim().toLowerCase();
    const field = COLUMN_KEYS[key];
    const pollField = POLL_COLUMN_KEYS[key];
    if (eq === -1 || (!field && !pollField)) {
      fail(
        `"${item}" is not key=column with key one of ${ALL_COLUMN_KEYS} (e.g. aggregatetype=aggregate_type,headers=)`,
      );
      continue;
    }
    if (seen.has(key)) {
      fail(`${key} is set twice`);
      continue;
    }
    seen.add(key);
    const column = item.slice(eq + 1).trim();
    if (column === '' && !OPTIONAL_COLUMNS.has(key)) {
      fail(
        `${key}= needs a column name (only headers= and created_at= may be empty: the table has no such column)`,
      );
      continue;
    }
    if (field === 'headers') event.headers = column === '' ? null : column;
    else if (field) event[field] = column;
    else if (pollField === 'createdAt') poll.createdAt = column === '' ? null : column;
    else if (pollField) poll[pollField] = column;
  }
  if (!ok) return z.NEVER;
  try {
    return { event: resolveColumns(event), given: event, poll };
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: err instanceof Error ? err.message.replace(/^columns\./, '') : String(err),
    });
    return z.NEVER;
  }
});

/** An outbox event to render a template with: the sink validates templates as it compiles them. */
const PROBE_EVENT = {
  kind: 'outbox',
  id: 'probe',
  aggregateType: 'a',
  aggregateId: 'b',
  type: 'c',
  payload: 'null',
  headers: {},
  source: { lsn: '0/0', commitLsn: '0/0', xid: null, commitTime: '', seq: 0, snapshot: null },
} as const;

const outboxSubject = z.string().superRefine((template, ctx) => {
  try {
    subjectFor(PROBE_EVENT, { subjectPrefix: 'prefix', outboxSubjectTemplate: template });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
  }
});

const RESERVED_PREFIXES = [HEARTBEAT_PREFIX, WATERMARK_PREFIX];

const messagePrefix = z.string().transform((text, ctx): string | null => {
  if (isNone(text)) return null;
  if (text.length === 0 || text.trim() !== text) {
    ctx.addIssue({ code: 'custom', message: `expected a prefix without surrounding spaces, got "${text}"` });
    return z.NEVER;
  }
  if (RESERVED_PREFIXES.includes(text)) {
    ctx.addIssue({
      code: 'custom',
      message: `"${text}" is used by Sluice itself; pick another prefix (default sluice.outbox)`,
    });
    return z.NEVER;
  }
  return text;
});

/** SLUICE_SOURCES: `postgres`, `mongodb`, or both (comma separated, each once). */
const SOURCE_NAMES = ['postgres', 'mongodb'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

const sourceList = z.string().transform((text, ctx): SourceName[] => {
  const out: SourceName[] = [];
  for (const raw of text.split(',')) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    if (!(SOURCE_NAMES as readonly string[]).includes(name)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected postgres, mongodb or postgres,mongodb, got "${raw.trim()}"`,
      });
      return z.NEVER;
    }
    if (out.includes(name as SourceName)) {
      ctx.addIssue({ code: 'custom', message: `${name} is listed twice` });
      return z.NEVER;
    }
    out.push(name as SourceName);
  }
  if (out.length === 0) {
    ctx.addIssue({
      code: 'custom',
      message: 'name at least one source: postgres, mongodb or postgres,mongodb',
    });
    return z.NEVER;
  }
  return out;
});

// MongoDB's own limits (docs: "Naming Restrictions"): a database name has none of /\. "$*<>:|?
// and at most 63 bytes; a collection name has no $ or NUL and does not start with system.
const MONGO_DATABASE = /^[^/\\. "$*<>:|?]+$/;

function checkCollection(name: string): string | undefined {
  if (name.length === 0) return 'an empty collection name';
  if (name.includes('$') || name.includes('\u0000'))
    return `"${name}" holds $ or NUL, which MongoDB does not allow in a collection name`;
  if (name.startsWith('system.'))
    return `"${name}" is a system collection, which change streams do not report`;
  return undefined;
}

const mongoCollections = z.string().transform((text, ctx): string[] | null => {
  if (text.trim() === '') return null;
  const out: string[] = [];
  for (const raw of text.split(',')) {
    const name = raw.trim();
    const problem = checkCollection(name);
    if (problem !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `${problem}; list collections separated by commas, e.g. orders,users`,
      });
      continue;
    }
    if (out.includes(name)) {
      ctx.addIssue({ code: 'custom', message: `"${name}" is listed twice` });
      continue;
    }
    out.push(name);
  }
  return out;
});

const mongoOutboxCollection = z.string().transform((text, ctx): string | null => {
  if (isNone(text)) return null;
  const problem = checkCollection(text.trim());
  if (problem !== undefined) {
    ctx.addIssue({ code: 'custom', message: problem });
    return z.NEVER;
  }
  return text.trim();
});

const urlWith = (protocols: string[]) =>
  z
    .string()
    .refine(
      (text) =>
        text.split(',').every((u) => protocols.some((p) => u.trim().startsWith(p)) && URL.canParse(u.trim())),
      { message: `expected a URL starting with ${protocols.join(' or ')}` },
    );

/** PEM text holding a `-----BEGIN … <kind>-----` block, or empty (unset). */
function pem(kind: string) {
  return z
    .string()
    .refine(
      (text) => text === '' || new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text),
      `expected PEM text with a "-----BEGIN …${kind}-----" block; give a file with the _FILE variant (e.g. SLUICE_NATS_TLS_CA_FILE=/path/ca.pem)`,
    );
}

/** libpq's file parameters of a connection URL, which node-postgres reads when it connects. */
const PG_FILE_PARAMS = ['sslrootcert', 'sslcert', 'sslkey'] as const;

/** A file a URL parameter names that cannot be read: said at start-up, not at the first connect. */
function unreadablePgFiles(url: string): string[] {
  if (!URL.canParse(url)) return [];
  const params = new URL(url).searchParams;
  const problems: string[] = [];
  for (const name of PG_FILE_PARAMS) {
    const file = params.get(name);
    if (file === null || file === '' || file === 'system') continue;
    try {
      readFileSync(file);
    } catch (err) {
      problems.push(`${name}=${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  return problems;
}

const schema = z
  .object({
    sources: sourceList,
    databaseUrl: urlWith(['postgres://', 'postgresql://']),
    mongodbUrl: z.string(),
    mongodbDatabase: z.string(),
    mongodbCollections: mongoCollections,
    mongodbOutboxCollection: mongoOutboxCollection,
    positionBucket: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected a bucket name of letters, digits, _ or -'),
    natsUrl: urlWith(['nats://', 'tls://', 'ws://', 'wss://']),
    natsUser: z.string(),
    natsPassword: z.string(),
    natsToken: z.string(),
    natsNkeySeed: z
      .string()
      .refine(
        (seed) => seed === '' || /^SU[A-Z2-7]{50,}$/.test(seed.trim()),
        'expected a user nkey seed: SU followed by base32 letters (nsc or `nk -gen user` make one)',
      ),
    natsCreds: z
      .string()
      .refine(
        (creds) => creds === '' || /-----BEGIN NATS USER JWT-----/.test(creds),
        'expected the contents of a .creds file (-----BEGIN NATS USER JWT----- …); SLUICE_NATS_CREDS_FILE=/path/user.creds reads one',
      ),
    natsTlsCa: pem('CERTIFICATE'),
    natsTlsCert: pem('CERTIFICATE'),
    natsTlsKey: pem('PRIVATE KEY'),
    tables: tableList,
    columns: columnRules,
    maskKey: z.string(),
    mode: oneOf(['stream', 'poll']),
    outboxTable,
    outboxColumns,
    outboxSubject,
    outboxMessagePrefix: messagePrefix,
    pollInterval: durationMs({ min: 1 }),
    pollBatchSize: integer(1, 10_000),
    pollCleanup: oneOf(['delete', 'mark']),
    slot: z
      .string()
      .regex(SLOT, 'expected 1-63 lower-case letters, digits or underscores (a Postgres slot name)'),
    publication: z.string().regex(IDENT, 'expected a plain identifier (letters, digits, underscores)'),
    failoverSlot: bool(),
    subjectPrefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'expected NATS subject tokens without wildcards'),
    stream: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected a stream name of letters, digits, _ or -'),
    streamReplicas: integer(1, 5),
    cloudEvents: bool(),
    duplicateWindow: durationMs({ min: 1000 }),
    streamMaxAge: maxAge,
    streamMaxBytes: maxBytes,
    snapshot: oneOf(['initial', 'never']),
    snapshotChunkSize: integer(1, 100_000),
    sink: oneOf(['nats', 'stdout']),
    httpPort: integer(0, 65535),
    httpHost: z.string().min(1),
    metricsUser: z
      .string()
      .refine((u) => !u.includes(':'), 'basic auth cannot carry a user name with a colon; pick another'),
    metricsPassword: z.string(),
    logLevel: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    maxInFlight: integer(1, 1_000_000),
    maxInFlightBytes: integer(1024, 8 * 1024 * 1024 * 1024),
    heartbeatInterval: durationMs({ min: 0 }),
    publishTimeout: durationMs({ min: 100 }),
    ordering: oneOf(['commit', 'key']),
    startupTimeout: durationMs({ min: 0 }),
    dlqKeyPolicy: oneOf(['park', 'skip']),
    dlqMaxAttempts: integer(1, 1_000_000),
    autoMigrate: bool(),
    embedded: bool(),
    embeddedDir: z.string().min(1),
    embeddedPostgres: oneOf(['auto', 'npm', 'system']),
    embeddedPgPort: integer(1, 65535),
    embeddedNatsPort: integer(1, 65535),
    configFile: z.string().optional(),
  })
  .superRefine((c, ctx) => {
    const issue = (key: SettingKey, message: string) =>
      ctx.addIssue({ code: 'custom', path: [key], message });
    const outboxTable = c.outboxTable;
    const outbox = outboxTable ? formatTableName(outboxTable) : null;
    if (outboxTable && c.tables.some((t) => sameTable(t, outboxTable))) {
      issue(
        'tables',
        `${outbox} is the outbox table: its inserts are published as domain events, so it cannot also be captured as row changes; remove it from SLUICE_TABLES`,
      );
    }
    if (c.mode === 'poll') {
      if (c.tables.length > 0) {
        issue(
          'tables',
          'must be empty with SLUICE_MODE=poll: row changes need logical replication; use SLUICE_MODE=stream to capture tables',
        );
      }
      if (!outbox)
        issue('outboxTable', 'SLUICE_MODE=poll reads the outbox table: name one (default sluice.outbox)');
      try {
        resolvePollColumns({ ...c.outboxColumns.event, ...c.outboxColumns.poll });
      } catch (err) {
        issue('outboxColumns', err instanceof Error ? err.message.replace(/^columns\./, '') : String(err));
      }
      if (c.failoverSlot) {
        issue(
          'failoverSlot',
          'SLUICE_MODE=poll uses no replication slot: unset SLUICE_FAILOVER_SLOT, or use SLUICE_MODE=stream',
        );
      }
    } else if (Object.keys(c.outboxColumns.poll).length > 0) {
      issue(
        'outboxColumns',
        `${Object.entries(POLL_COLUMN_KEYS)
          .filter(([, field]) => Object.hasOwn(c.outboxColumns.poll, field))
          .map(([key]) => key)
          .join(', ')}: only poll mode reads these columns (SLUICE_MODE=poll)`,
      );
    }
    if (c.streamMaxAge > 0 && c.streamMaxAge < c.duplicateWindow) {
      issue(
        'streamMaxAge',
        `must be at least SLUICE_DUPLICATE_WINDOW (${c.duplicateWindow} ms): JetStream cannot remember message ids longer than it keeps messages`,
      );
    }
    if ((c.metricsUser === '') !== (c.metricsPassword === '')) {
      issue(
        c.metricsUser === '' ? 'metricsUser' : 'metricsPassword',
        'SLUICE_METRICS_USER and SLUICE_METRICS_PASSWORD go together: set both to protect /metrics with basic auth, or neither',
      );
    }
    for (const rules of c.columns) {
      if (!c.tables.some((t) => sameTable(t, rules.table))) {
        issue(
          'columns',
          `${formatTableName(rules.table)} is not captured: column rules apply to tables of SLUICE_TABLES (${
            c.tables.map(formatTableName).join(', ') || 'none'
          })`,
        );
      }
    }
    const hashes = c.columns.some((r) => [...r.mask.values()].includes('hash'));
    if (hashes && c.maskKey.length < 32) {
      issue(
        'maskKey',
        c.maskKey === ''
          ? 'column=hash in SLUICE_COLUMNS needs a secret key: set SLUICE_MASK_KEY (or SLUICE_MASK_KEY_FILE) to at least 32 random characters, e.g. `openssl rand -hex 32`'
          : `must be at least 32 characters (it has ${c.maskKey.length}): a short key lets anyone who guesses it reverse the hashes of likely values; e.g. \`openssl rand -hex 32\``,
      );
    }
    const pgFiles = unreadablePgFiles(c.databaseUrl);
    if (pgFiles.length > 0) {
      issue(
        'databaseUrl',
        `${pgFiles.join('; ')}: point it at a readable PEM file (e.g. sslrootcert=/etc/sluice/pg-ca.pem with sslmode=verify-full)`,
      );
    }
    const urlCredentials = parseNatsServers(c.natsUrl);
    const urlHasCredentials = urlCredentials.user !== undefined || urlCredentials.token !== undefined;
    if ((c.natsUser === '') !== (c.natsPassword === '')) {
      issue(
        c.natsUser === '' ? 'natsUser' : 'natsPassword',
        'SLUICE_NATS_USER and SLUICE_NATS_PASSWORD go together: set both, or neither',
      );
    }
    const natsAuth = [
      urlHasCredentials ? 'credentials in SLUICE_NATS_URL' : '',
      c.natsUser !== '' ? 'SLUICE_NATS_USER' : '',
      c.natsToken !== '' ? 'SLUICE_NATS_TOKEN' : '',
      c.natsNkeySeed !== '' ? 'SLUICE_NATS_NKEY_SEED' : '',
      c.natsCreds !== '' ? 'SLUICE_NATS_CREDS' : '',
    ].filter((s) => s !== '');
    if (natsAuth.length > 1) {
      issue(
        'natsUrl',
        `NATS authentication is given more than once (${natsAuth.join(', ')}): a server account takes one way of signing in; keep one`,
      );
    }
    if ((c.natsTlsCert === '') !== (c.natsTlsKey === '')) {
      issue(
        c.natsTlsCert === '' ? 'natsTlsCert' : 'natsTlsKey',
        'SLUICE_NATS_TLS_CERT and SLUICE_NATS_TLS_KEY go together (a client certificate and its key)',
      );
    }
    if (c.embedded && c.embeddedPgPort === c.embeddedNatsPort) {
      issue('embeddedNatsPort', `the embedded Postgres already uses port ${c.embeddedPgPort}; pick another`);
    }
    checkMongo(c, issue);
    if (!c.sources.includes('postgres')) {
      if (c.tables.length > 0) {
        issue(
          'tables',
          'captures Postgres tables: add postgres to SLUICE_SOURCES (postgres,mongodb), or leave SLUICE_TABLES empty',
        );
      }
      if (c.columns.length > 0) {
        // Column filters and masks apply to Postgres rows only: MongoDB documents would pass unfiltered.
        issue(
          'columns',
          'filters and masks columns of Postgres tables only: MongoDB documents are published whole; remove SLUICE_COLUMNS or add postgres to SLUICE_SOURCES',
        );
      }
      return;
    }
    if (c.mode === 'stream' && c.tables.length === 0 && !outbox && c.outboxMessagePrefix === null) {
      issue(
        'tables',
        'nothing to relay: no tables, SLUICE_OUTBOX_TABLE=none and SLUICE_OUTBOX_MESSAGE_PREFIX=none; capture tables or enable an outbox',
      );
    }
  });

/** The MongoDB settings: required with SLUICE_SOURCES=mongodb, refused without it (they would do nothing). */
function checkMongo(
  c: {
    sources: SourceName[];
    mongodbUrl: string;
    mongodbDatabase: string;
    mongodbCollections: string[] | null;
    mongodbOutboxCollection: string | null;
  },
  issue: (key: SettingKey, message: string) => void,
): void {
  if (!c.sources.includes('mongodb')) {
    const set: [SettingKey, boolean][] = [
      ['mongodbUrl', c.mongodbUrl !== ''],
      ['mongodbDatabase', c.mongodbDatabase !== ''],
      ['mongodbCollections', c.mongodbCollections !== null],
      ['mongodbOutboxCollection', c.mongodbOutboxCollection !== null],
    ];
    for (const [key, given] of set) {
      if (given)
        issue(
          key,
          'is set but SLUICE_SOURCES does not include mongodb: set SLUICE_SOURCES=mongodb (or postgres,mongodb)',
        );
    }
    return;
  }
  const urls = c.mongodbUrl.trim();
  if (urls === '') {
    issue(
      'mongodbUrl',
      'is required with SLUICE_SOURCES=mongodb, e.g. mongodb://user:pass@db1,db2,db3/?replicaSet=rs0',
    );
  } else if (!/^mongodb(\+srv)?:\/\/[^/?#]+/.test(urls)) {
    issue('mongodbUrl', 'expected a URL starting with mongodb:// or mongodb+srv://');
  }
  if (c.mongodbDatabase === '') {
    issue('mongodbDatabase', 'is required with SLUICE_SOURCES=mongodb: name the database to watch');
  } else if (
    !MONGO_DATABASE.test(c.mongodbDatabase) ||
    c.mongodbDatabase.includes('\u0000') ||
    Buffer.byteLength(c.mongodbDatabase) > 63
  ) {
    issue(
      'mongodbDatabase',
      `"${c.mongodbDatabase}" is not a MongoDB database name (at most 63 bytes, none of / \\ . space " $ * < > : | ?)`,
    );
  }
  const outbox = c.mongodbOutboxCollection;
  if (outbox !== null && c.mongodbCollections?.includes(outbox)) {
    issue(
      'mongodbCollections',
      `${outbox} is the outbox collection: its inserts are published as domain events, so it cannot also be captured as changes; remove it from SLUICE_MONGODB_COLLECTIONS`,
    );
  }
}

export type RelayConfig = z.output<typeof schema>;

/** Where each value came from, for start-up logging (never the value of a secret). */
export type ConfigSources = Partial<Record<SettingKey, 'default' | 'file' | 'env' | 'env_file' | 'flag'>>;

export interface LoadedConfig {
  config: RelayConfig;
  sources: ConfigSources;
}

/** Parses `--flag value` and `--flag=value` for every known setting; unknown flags are errors. */
export function parseFlags(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--'))
      throw new ConfigError(arg, 'unexpected argument', { hint: 'run `sluice help`' });
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const spec = SETTINGS.find((s) => s.flag === flag);
    if (!spec)
      throw new ConfigError(flag, 'unknown flag', { hint: 'run `sluice help` for the list of settings' });
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if ('boolean' in spec && spec.boolean && !isBooleanWord(argv[i + 1])) value = 'true';
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) throw new ConfigError(flag, 'needs a value', { hint: `${flag} <value>` });
    out[spec.key] = value;
  }
  return out;
}

/** A word `--flag <word>` takes as the value of a boolean flag; anything else is the next argument. */
function isBooleanWord(arg: string | undefined): boolean {
  return (
    arg !== undefined && ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'].includes(arg.toLowerCase())
  );
}

/** Settings whose file value keeps its JSON shape: tables may be `{ schema, table }` objects. */
const STRUCTURED_IN_FILE = new Set<string>(['tables', 'outboxTable', 'columns']);

function readConfigFile(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new ConfigError('SLUICE_CONFIG', `cannot read ${path} as JSON`, {
      cause,
      hint: 'point SLUICE_CONFIG (--config) at a JSON object of settings, e.g. {"tables": "public.orders"}',
    });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('SLUICE_CONFIG', `${path} must hold a JSON object`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!settingByKey(key) || key === 'configFile') {
      throw new ConfigError('SLUICE_CONFIG', `${path}: unknown setting "${key}"`, {
        hint: `known settings: ${SETTINGS.map((s) => s.key).join(', ')}`,
      });
    }
    if (STRUCTURED_IN_FILE.has(key) && value !== null && typeof value === 'object') out[key] = value;
    else out[key] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return out;
}

/**
 * `<VARIABLE>_FILE=/path`: the setting's value is the file's contents (Docker and Kubernetes
 * secrets are files), without the trailing newline an editor or `echo` leaves. Works for every
 * setting; setting both the variable and its _FILE is an error, as it is ambiguous.
 */
function readEnvFile(env: NodeJS.ProcessEnv, spec: SettingSpec): string | undefined {
  const fileVar = `${spec.env}_FILE`;
  const path = env[fileVar];
  if (path === undefined || path === '') return undefined;
  if (env[spec.env] !== undefined && env[spec.env] !== '') {
    throw new ConfigError(fileVar, `both ${spec.env} and ${fileVar} are set`, {
      hint: `unset one of them: ${fileVar} names a file holding the value of ${spec.env}`,
    });
  }
  try {
    return readFileSync(path, 'utf8').replace(/[\r\n]+$/, '');
  } catch (cause) {
    throw new ConfigError(
      fileVar,
      `cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`,
      {
        cause,
        hint: `point ${fileVar} at a readable file holding the value of ${spec.env}`,
      },
    );
  }
}

function describe(spec: SettingSpec): string {
  return `${spec.env} (${spec.flag})`;
}

/**
 * Merges defaults < config file < environment < flags and validates everything at once, so a
 * person sees every wrong setting in one go.
 */
export function loadConfig(env: NodeJS.ProcessEnv, argv: readonly string[] = []): LoadedConfig {
  const flags = parseFlags(argv);
  const raw: Record<string, unknown> = {};
  const sources: ConfigSources = {};
  const fileSpec = settingByKey('configFile') as SettingSpec;
  const configFile = flags['configFile'] ?? env[fileSpec.env];
  const fromFile = configFile ? readConfigFile(configFile) : {};

  for (const spec of SETTINGS) {
    const key = spec.key as SettingKey;
    const envValue = [spec.env, ...(('envFallbacks' in spec ? spec.envFallbacks : []) as string[])]
      .map((name) => env[name])
      .find((v) => v !== undefined && v !== '');
    const fromEnvFile = key === 'configFile' ? undefined : readEnvFile(env, spec);
    let value: unknown;
    if (flags[key] !== undefined) {
      value = flags[key];
      sources[key] = 'flag';
    } else if (fromEnvFile !== undefined) {
      value = fromEnvFile;
      sources[key] = 'env_file';
    } else if (envValue !== undefined) {
      value = envValue;
      sources[key] = 'env';
    } else if (fromFile[key] !== undefined) {
      value = fromFile[key];
      sources[key] = 'file';
    } else if ('default' in spec) {
      value = spec.default;
      sources[key] = 'default';
    }
    if (value !== undefined) raw[key] = value;
  }

  const result = schema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const spec = settingByKey(String(issue.path[0]));
      const where = spec ? describe(spec) : String(issue.path[0]);
      const shown = spec?.secret ? '' : ` (${spec?.description ?? ''})`;
      return `  - ${where}: ${issue.message}${shown}`;
    });
    const first = settingByKey(String(result.error.issues[0]?.path[0]));
    throw new ConfigError(
      first ? first.env : 'configuration',
      `invalid configuration:\n${lines.join('\n')}`,
      { hint: 'set the variables above (or the flags); `sluice help` lists every setting' },
    );
  }
  return { config: result.data, sources };
}
