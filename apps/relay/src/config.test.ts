import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('loadConfig', () => {
  it('fills every default when nothing is set', () => {
    const { config, sources } = loadConfig({});
    expect(config).toMatchObject({
      natsUrl: 'nats://127.0.0.1:4222',
      slot: 'sluice',
      publication: 'sluice',
      subjectPrefix: 'sluice',
      stream: 'SLUICE',
      snapshot: 'initial',
      sink: 'nats',
      tables: [],
      duplicateWindow: 2 * 3600 * 1000,
      streamMaxAge: 7 * 24 * 3600 * 1000,
      streamMaxBytes: -1,
      httpPort: 9464,
    });
    expect(sources.slot).toBe('default');
  });

  it('reads SLUICE_* variables, falls back to DATABASE_URL and lets flags win', () => {
    const { config, sources } = loadConfig(
      { DATABASE_URL: 'postgres://a@h/db', SLUICE_TABLES: 'public.orders, app.items', SLUICE_SLOT: 'one' },
      ['--slot', 'two', '--duplicate-window=30m'],
    );
    expect(config.databaseUrl).toBe('postgres://a@h/db');
    expect(config.tables).toEqual([
      { schema: 'public', table: 'orders' },
      { schema: 'app', table: 'items' },
    ]);
    expect(config.slot).toBe('two');
    expect(sources.slot).toBe('flag');
    expect(config.duplicateWindow).toBe(30 * 60 * 1000);
  });

  it('reports every invalid setting at once, by variable and flag', () => {
    let error: unknown;
    try {
      loadConfig({ SLUICE_SNAPSHOT: 'sometimes', SLUICE_TABLES: 'public.', SLUICE_SLOT: 'Bad-Slot' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain(
      'SLUICE_SNAPSHOT (--snapshot): expected one of initial, never, got "sometimes"',
    );
    expect(message).toContain('SLUICE_TABLES (--tables): `public.` has no table name after the dot');
    expect(message).toContain('SLUICE_SLOT (--slot)');
  });

  it('never echoes a secret setting back in its error', () => {
    expect(() => loadConfig({ SLUICE_DATABASE_URL: 'mysql://u:hunter2@h/db' })).toThrow(
      /SLUICE_DATABASE_URL \(--database-url\): expected a URL starting with postgres:\/\//,
    );
    try {
      loadConfig({ SLUICE_DATABASE_URL: 'mysql://u:hunter2@h/db' });
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
    }
  });

  it('reads the retention of a stream the relay creates: a duration or unlimited, a size or unlimited', () => {
    const { config } = loadConfig({ SLUICE_STREAM_MAX_AGE: '36h', SLUICE_STREAM_MAX_BYTES: '10GiB' });
    expect(config.streamMaxAge).toBe(36 * 3600 * 1000);
    expect(config.streamMaxBytes).toBe(10 * 2 ** 30);
    const unlimited = loadConfig({
      SLUICE_STREAM_MAX_AGE: 'unlimited',
      SLUICE_STREAM_MAX_BYTES: '500MB',
    }).config;
    expect(unlimited.streamMaxAge).toBe(0);
    expect(unlimited.streamMaxBytes).toBe(500_000_000);
  });

  it('refuses a stream retention it cannot create, saying what it expects', () => {
    const message = configError({ SLUICE_STREAM_MAX_AGE: 'a week', SLUICE_STREAM_MAX_BYTES: '10 parsecs' });
    expect(message).toContain(
      'SLUICE_STREAM_MAX_AGE (--stream-max-age): expected a duration like 7d, 12h or 30m (at least 1s), or unlimited, got "a week"',
    );
    expect(message).toContain('SLUICE_STREAM_MAX_BYTES (--stream-max-bytes): expected a size like 10GiB');
    expect(configError({ SLUICE_STREAM_MAX_AGE: '1h', SLUICE_DUPLICATE_WINDOW: '2h' })).toContain(
      'SLUICE_STREAM_MAX_AGE (--stream-max-age): must be at least SLUICE_DUPLICATE_WINDOW',
    );
    expect(configError({ SLUICE_STREAM_MAX_BYTES: '1000' })).toContain('at least 1MiB');
  });

  it('rejects unknown flags with a pointer to help', () => {
    expect(() => loadConfig({}, ['--tabels', 'x'])).toThrow(/--tabels: unknown flag/);
  });
});

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('loadConfig: outbox and mode', () => {
  it('defaults to streaming with the sluice.outbox table, Debezium column names and the sluice.outbox prefix', () => {
    const { config } = loadConfig({});
    expect(config).toMatchObject({
      mode: 'stream',
      outboxTable: { schema: 'sluice', table: 'outbox' },
      outboxColumns: {
        event: {
          id: 'id',
          aggregateType: 'aggregatetype',
          aggregateId: 'aggregateid',
          type: 'type',
          payload: 'payload',
          headers: 'headers',
        },
        given: {},
        poll: {},
      },
      outboxSubject: '{prefix}.outbox.{aggregatetype}.{type}',
      outboxMessagePrefix: 'sluice.outbox',
    });
  });

  it('maps the columns of an existing table, an empty headers= meaning it has none', () => {
    const { config } = loadConfig({
      SLUICE_OUTBOX_TABLE: 'public.events',
      SLUICE_OUTBOX_COLUMNS: ' aggregatetype=aggregate_type, AggregateId=Aggregate Id ,headers=',
    });
    expect(config.outboxTable).toEqual({ schema: 'public', table: 'events' });
    expect(config.outboxColumns.event).toEqual({
      id: 'id',
      aggregateType: 'aggregate_type',
      aggregateId: 'Aggregate Id',
      type: 'type',
      payload: 'payload',
      headers: null,
    });
    expect(config.outboxColumns.given).toEqual({
      aggregateType: 'aggregate_type',
      aggregateId: 'Aggregate Id',
      headers: null,
    });
    expect(config.outboxColumns.poll).toEqual({});
  });

  it('turns the table outbox and the message outbox off with none', () => {
    const { config } = loadConfig({
      SLUICE_TABLES: 'public.orders',
      SLUICE_OUTBOX_TABLE: 'none',
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'NONE',
    });
    expect(config.outboxTable).toBeNull();
    expect(config.outboxMessagePrefix).toBeNull();
  });

  it('names each bad outbox setting and how to write it', () => {
    const message = configError({
      SLUICE_OUTBOX_TABLE: 'sluice.outbox.v2',
      SLUICE_OUTBOX_COLUMNS: 'aggregate=agg,payload=,type',
      SLUICE_OUTBOX_SUBJECT: '{prefix}.{tenant}.{type}',
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'sluice.heartbeat',
      SLUICE_MODE: 'batch',
    });
    expect(message).toContain(
      'SLUICE_OUTBOX_TABLE (--outbox-table): `sluice.outbox.v2` has 3 dot-separated parts, but a table is schema.table; if a name contains a dot, double-quote it: "sluice.outbox".v2 or sluice."outbox.v2"',
    );
    expect(message).toContain('SLUICE_OUTBOX_COLUMNS (--outbox-columns): "aggregate=agg" is not key=column');
    expect(message).toContain('payload= needs a column name');
    expect(message).toContain('"type" is not key=column');
    expect(message).toContain(
      'SLUICE_OUTBOX_SUBJECT (--outbox-subject): outboxSubjectTemplate: unknown placeholder {tenant}',
    );
    expect(message).toContain(
      'SLUICE_OUTBOX_MESSAGE_PREFIX (--outbox-message-prefix): "sluice.heartbeat" is used by Sluice itself',
    );
    expect(message).toContain('SLUICE_MODE (--mode)');
  });

  it('takes the poll-mode columns in poll mode only, an empty created_at= meaning there is none', () => {
    const { config } = loadConfig({
      SLUICE_MODE: 'poll',
      SLUICE_OUTBOX_COLUMNS: 'txid=tx,position=seq,created_at=,published_at=sent_at',
    });
    expect(config.outboxColumns.poll).toEqual({
      txid: 'tx',
      position: 'seq',
      createdAt: null,
      publishedAt: 'sent_at',
    });
    expect(configError({ SLUICE_MODE: 'poll', SLUICE_OUTBOX_COLUMNS: 'txid=type' })).toContain(
      'SLUICE_OUTBOX_COLUMNS (--outbox-columns): txid: column "type" is already used',
    );
    expect(configError({ SLUICE_OUTBOX_COLUMNS: 'txid=tx,created_at=' })).toContain(
      'SLUICE_OUTBOX_COLUMNS (--outbox-columns): txid, created_at: only poll mode reads these columns',
    );
  });

  it('refuses two fields mapped to one column', () => {
    expect(configError({ SLUICE_OUTBOX_COLUMNS: 'type=kind,aggregatetype=kind' })).toMatch(
      /SLUICE_OUTBOX_COLUMNS \(--outbox-columns\): .*column "kind" is already used/,
    );
  });

  it('refuses capturing the outbox table as row changes too', () => {
    expect(configError({ SLUICE_TABLES: 'public.orders,sluice.outbox' })).toContain(
      'sluice.outbox is the outbox table',
    );
  });

  it('reads SLUICE_FAILOVER_SLOT as a boolean, off by default, and refuses it in poll mode, which has no slot', () => {
    expect(loadConfig({}).config.failoverSlot).toBe(false);
    expect(loadConfig({ SLUICE_FAILOVER_SLOT: 'true' }).config.failoverSlot).toBe(true);
    expect(loadConfig({}, ['--failover-slot']).config.failoverSlot).toBe(true);
    expect(configError({ SLUICE_FAILOVER_SLOT: 'sometimes' })).toContain(
      'SLUICE_FAILOVER_SLOT (--failover-slot): expected true or false, got "sometimes"',
    );
    expect(configError({ SLUICE_MODE: 'poll', SLUICE_FAILOVER_SLOT: 'true' })).toContain(
      'SLUICE_FAILOVER_SLOT (--failover-slot): SLUICE_MODE=poll uses no replication slot',
    );
  });

  it('refuses captured tables in poll mode, which has no logical replication', () => {
    expect(configError({ SLUICE_MODE: 'poll', SLUICE_TABLES: 'public.orders' })).toContain(
      'SLUICE_TABLES (--tables): must be empty with SLUICE_MODE=poll',
    );
    expect(configError({ SLUICE_MODE: 'poll', SLUICE_OUTBOX_TABLE: 'none' })).toContain(
      'SLUICE_OUTBOX_TABLE (--outbox-table): SLUICE_MODE=poll reads the outbox table',
    );
  });

  it('refuses a configuration that relays nothing', () => {
    expect(configError({ SLUICE_OUTBOX_TABLE: 'none', SLUICE_OUTBOX_MESSAGE_PREFIX: 'none' })).toContain(
      'nothing to relay',
    );
  });

  it('takes SLUICE_METRICS_USER and SLUICE_METRICS_PASSWORD together, or neither', () => {
    expect(loadConfig({}).config).toMatchObject({ metricsUser: '', metricsPassword: '' });
    expect(
      loadConfig({ SLUICE_METRICS_USER: 'prom', SLUICE_METRICS_PASSWORD: 'secret-42' }).config,
    ).toMatchObject({ metricsUser: 'prom', metricsPassword: 'secret-42' });
    expect(() => loadConfig({ SLUICE_METRICS_USER: 'prom' })).toThrow(
      /SLUICE_METRICS_PASSWORD \(--metrics-password\): SLUICE_METRICS_USER and SLUICE_METRICS_PASSWORD go together/,
    );
    let error: unknown;
    try {
      loadConfig({ SLUICE_METRICS_PASSWORD: 'pw-Only-1234' });
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toMatch(/SLUICE_METRICS_USER \(--metrics-user\): .* go together/);
    expect((error as Error).message).not.toContain('pw-Only-1234');
    expect(() => loadConfig({ SLUICE_METRICS_USER: 'a:b', SLUICE_METRICS_PASSWORD: 'x' })).toThrow(
      /SLUICE_METRICS_USER \(--metrics-user\): basic auth cannot carry a user name with a colon/,
    );
  });
});

/** A config file holding `settings`, for SLUICE_CONFIG. */
function configFile(settings: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-config-')), 'sluice.json');
  writeFileSync(path, JSON.stringify(settings));
  return path;
}

describe('loadConfig: table names', () => {
  it('reads SLUICE_TABLES as SQL: unquoted names fold, quoted ones keep case, spaces, dots, commas, quotes and Unicode', () => {
    const { config } = loadConfig({
      SLUICE_TABLES: 'Public.Orders, public."Order Items", "my.schema"."a,b", "we""ird"."Ünïcode", customers',
    });
    expect(config.tables).toEqual([
      { schema: 'public', table: 'orders' },
      { schema: 'public', table: 'Order Items' },
      { schema: 'my.schema', table: 'a,b' },
      { schema: 'we"ird', table: 'Ünïcode' },
      { schema: 'public', table: 'customers' },
    ]);
  });

  it('quotes each bad entry exactly as written, with the fix', () => {
    const message = configError({
      SLUICE_TABLES: 'public.orders, public.Order Items, a.b.c, public.',
    });
    expect(message).toContain(
      'SLUICE_TABLES (--tables): `public.Order Items` has a space (character 13), which an unquoted name cannot contain; double-quote the name: public."Order Items"',
    );
    expect(message).toContain('SLUICE_TABLES (--tables): `a.b.c` has 3 dot-separated parts');
    expect(message).toContain('SLUICE_TABLES (--tables): `public.` has no table name after the dot');
    expect(configError({ SLUICE_TABLES: 'public."Order Items, public.x' })).toContain(
      '`public."Order Items, public.x` has a double quote at character 8 that is never closed; end the quoted name with another double quote, e.g. public."Order Items"',
    );
  });

  it('refuses a table listed twice, however it is spelled', () => {
    expect(configError({ SLUICE_TABLES: 'public.orders, Public.ORDERS' })).toContain(
      '`Public.ORDERS` names public.orders, which `public.orders` already names; list each table once',
    );
  });

  it('reads the outbox table with the same rules', () => {
    expect(loadConfig({ SLUICE_OUTBOX_TABLE: 'App."Outbox Events"' }).config.outboxTable).toEqual({
      schema: 'app',
      table: 'Outbox Events',
    });
    expect(loadConfig({ SLUICE_OUTBOX_TABLE: 'outbox' }).config.outboxTable).toEqual({
      schema: 'public',
      table: 'outbox',
    });
    expect(configError({ SLUICE_TABLES: '"sluice"."outbox"' })).toContain(
      'sluice.outbox is the outbox table',
    );
  });

  it('takes exact { schema, table } objects and SQL strings from the config file', () => {
    const path = configFile({
      tables: [
        { schema: 'My.Schema', table: 'Order "Items"' },
        'Public.Orders',
        { schema: 'public', table: 'a,b' },
      ],
      outboxTable: { schema: 'App', table: 'Outbox' },
    });
    const { config, sources } = loadConfig({ SLUICE_CONFIG: path });
    expect(config.tables).toEqual([
      { schema: 'My.Schema', table: 'Order "Items"' },
      { schema: 'public', table: 'orders' },
      { schema: 'public', table: 'a,b' },
    ]);
    expect(config.outboxTable).toEqual({ schema: 'App', table: 'Outbox' });
    expect(sources.tables).toBe('file');
  });

  it('quotes a bad config file entry as its JSON', () => {
    const path = configFile({ tables: [{ schema: 'public' }, { schema: 'public', name: 'x' }, 'a.b.c'] });
    const message = configError({ SLUICE_CONFIG: path });
    expect(message).toContain(
      'SLUICE_TABLES (--tables): `{"schema":"public"}` has no table name; give "table" as a non-empty string',
    );
    expect(message).toContain('`{"schema":"public","name":"x"}` has "name", which is not a key of a table');
    expect(message).toContain('`a.b.c` has 3 dot-separated parts');
  });
});

function secretFile(content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-secret-')), 'value');
  writeFileSync(path, content);
  return path;
}

const SEED = `SU${'A'.repeat(40)}BCDEFGHIJKLMNOPQ`;

describe('loadConfig: secrets from *_FILE variables', () => {
  it('reads any setting from <VARIABLE>_FILE, without the trailing newline', () => {
    const { config, sources } = loadConfig({
      SLUICE_DATABASE_URL_FILE: secretFile('postgres://app:s3cret@db:5432/app\n'),
      SLUICE_NATS_PASSWORD_FILE: secretFile('nats pw\r\n'),
      SLUICE_NATS_USER: 'relay',
      SLUICE_METRICS_USER: 'prom',
      SLUICE_METRICS_PASSWORD_FILE: secretFile('m-pass'),
      SLUICE_SLOT_FILE: secretFile('from_file\n'),
    });
    expect(config.databaseUrl).toBe('postgres://app:s3cret@db:5432/app');
    expect(config.natsPassword).toBe('nats pw');
    expect(config.metricsPassword).toBe('m-pass');
    expect(config.slot).toBe('from_file');
    expect(sources.databaseUrl).toBe('env_file');
  });

  it('refuses a variable set both directly and as _FILE, and an unreadable file, by name', () => {
    expect(configError({ SLUICE_NATS_TOKEN: 'a', SLUICE_NATS_TOKEN_FILE: secretFile('b') })).toContain(
      'both SLUICE_NATS_TOKEN and SLUICE_NATS_TOKEN_FILE are set',
    );
    const message = configError({ SLUICE_NATS_TOKEN_FILE: '/nonexistent/token' });
    expect(message).toContain('SLUICE_NATS_TOKEN_FILE');
    expect(message).toContain('cannot read /nonexistent/token: ENOENT');
  });

  it('never echoes a secret read from a file in an error', () => {
    const message = configError({ SLUICE_NATS_NKEY_SEED_FILE: secretFile('not-a-seed-hunter2') });
    expect(message).toContain('SLUICE_NATS_NKEY_SEED (--nats-nkey-seed): expected a user nkey seed');
    expect(message).not.toContain('hunter2');
  });
});

describe('loadConfig: NATS authentication and TLS', () => {
  it('takes one way of signing in: user+password, token, nkey seed or creds', () => {
    expect(loadConfig({ SLUICE_NATS_TOKEN: 't0k' }).config.natsToken).toBe('t0k');
    expect(loadConfig({ SLUICE_NATS_NKEY_SEED: SEED }).config.natsNkeySeed).toBe(SEED);
    expect(configError({ SLUICE_NATS_URL: 'nats://u:p@h:4222', SLUICE_NATS_TOKEN: 't' })).toContain(
      'NATS authentication is given more than once (credentials in SLUICE_NATS_URL, SLUICE_NATS_TOKEN)',
    );
    expect(configError({ SLUICE_NATS_USER: 'u' })).toContain(
      'SLUICE_NATS_USER and SLUICE_NATS_PASSWORD go together',
    );
    expect(configError({ SLUICE_NATS_CREDS: 'just text' })).toContain(
      'expected the contents of a .creds file',
    );
  });

  it('wants PEM text for TLS settings, and a client certificate with its key', () => {
    expect(configError({ SLUICE_NATS_TLS_CA: '/etc/ca.pem' })).toContain(
      'give a file with the _FILE variant (e.g. SLUICE_NATS_TLS_CA_FILE=/path/ca.pem)',
    );
    const cert = '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n';
    expect(configError({ SLUICE_NATS_TLS_CERT: cert })).toContain(
      'SLUICE_NATS_TLS_CERT and SLUICE_NATS_TLS_KEY go together',
    );
    expect(loadConfig({ SLUICE_NATS_TLS_CA_FILE: secretFile(cert) }).config.natsTlsCa).toBe(cert.trimEnd());
  });

  it('names an sslrootcert of SLUICE_DATABASE_URL that cannot be read before connecting', () => {
    const message = configError({
      SLUICE_DATABASE_URL: 'postgres://u:pw@db/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem',
    });
    expect(message).toContain('sslrootcert=/nonexistent/ca.pem cannot be read (ENOENT)');
    expect(message).not.toContain(':pw@');
  });
});

describe('loadConfig: column rules', () => {
  it('reads SLUICE_COLUMNS, or an object in the config file, for captured tables', () => {
    const { config } = loadConfig({
      SLUICE_TABLES: 'public.users',
      SLUICE_COLUMNS: 'Public.Users: -password, email=hash',
      SLUICE_MASK_KEY: 'x'.repeat(32),
    });
    expect(config.columns.map((r) => [r.table.table, r.drop, [...r.mask]])).toEqual([
      ['users', ['password'], [['email', 'hash']]],
    ]);
    const path = configFile({ tables: 'public.users', columns: { 'public.users': ['plan'] } });
    expect(loadConfig({ SLUICE_CONFIG: path }).config.columns[0]?.keep).toEqual(['plan']);
  });

  it('wants a mask key of 32 characters or more for hashes, and never shows it', () => {
    const message = configError({
      SLUICE_TABLES: 'public.users',
      SLUICE_COLUMNS: 'public.users: email=hash',
      SLUICE_MASK_KEY: 'short-secret',
    });
    expect(message).toContain('SLUICE_MASK_KEY (--mask-key): must be at least 32 characters (it has 12)');
    expect(message).not.toContain('short-secret');
  });
});
