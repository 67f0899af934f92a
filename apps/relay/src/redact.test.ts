import { describe, expect, it } from 'vitest';
import { redactString, redactValue } from './redact.js';

describe('redaction', () => {
  it('masks the password of a URL and keeps the rest readable', () => {
    expect(redactString('connect postgres://app:s3cr%40t@db:5432/prod failed')).toBe(
      'connect postgres://app:***@db:5432/prod failed',
    );
    expect(redactString('nats://user:pw@127.0.0.1:4222')).toBe('nats://user:***@127.0.0.1:4222');
  });

  it('masks a password holding an unencoded @ entirely', () => {
    expect(redactString('postgres://u:p@ss@db/app')).toBe('postgres://u:***@db/app');
  });

  it('masks each URL of a comma list', () => {
    expect(redactString('nats://a:one@h1:4222,nats://b:two@h2:4222')).toBe(
      'nats://a:***@h1:4222,nats://b:***@h2:4222',
    );
  });

  it('masks environment-style and query-string secrets', () => {
    expect(redactString('PGPASSWORD=abc psql')).toBe('PGPASSWORD=*** psql');
    expect(redactString('postgres://db/app?sslpassword=abc&x=1')).toBe(
      'postgres://db/app?sslpassword=***&x=1',
    );
  });

  it('masks key=value passwords of libpq-style strings', () => {
    expect(redactString("host=db password='x y' user=app")).toBe('host=db password=*** user=app');
    expect(redactString('token=abc123&x=1')).toBe('token=***&x=1');
  });

  it('scrubs errors, causes and nested objects', () => {
    const err = new Error('bad postgres://u:hunter2@h/db', { cause: new Error('at nats://a:b@h') });
    const out = JSON.stringify(redactValue({ err, nested: { url: 'postgres://u:hunter2@h/db' } }));
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain(':b@');
    expect(out).toContain('postgres://u:***@h/db');
  });

  it('leaves strings without credentials alone', () => {
    expect(redactString('postgres://postgres@127.0.0.1:5432/postgres')).toBe(
      'postgres://postgres@127.0.0.1:5432/postgres',
    );
  });

  it("keeps an error's facts but not the live objects libraries attach to it", () => {
    class Client {
      socket = { fd: 3 };
    }
    const err = Object.assign(new Error('terminating connection'), {
      code: '57P01',
      severity: 'FATAL',
      client: new Client(),
      detail: { table: 'orders' },
    });
    const out = redactValue(err) as Record<string, unknown>;
    expect(out).toMatchObject({ code: '57P01', severity: 'FATAL', detail: { table: 'orders' } });
    expect(out).not.toHaveProperty('client');
  });
});

describe('redaction of awkward credentials', () => {
  it('masks passwords holding spaces, slashes, hashes and @ in free text', () => {
    for (const password of ['Sec ret', 'p@ss/w0rd#x', 'a/b', 'x y@z']) {
      const line = `connect postgres://app:${password}@127.0.0.1:55499/app failed`;
      const out = redactString(line);
      expect(out).toBe('connect postgres://app:***@127.0.0.1:55499/app failed');
    }
  });

  it('masks a NATS token alone in the userinfo, and NATS user:pass', () => {
    expect(redactString('nats://MyT0ken123@127.0.0.1:4222')).toBe('nats://***@127.0.0.1:4222');
    expect(redactString('nats://u:p w@127.0.0.1:4222,nats://h2:4222')).toBe(
      'nats://u:***@127.0.0.1:4222,nats://h2:4222',
    );
  });

  it('masks URL settings whole, keeping a Postgres user name', () => {
    expect(redactValue({ databaseUrl: 'postgres://app:Sec ret@db:5432/app' })).toEqual({
      databaseUrl: 'postgres://app:***@db:5432/app',
    });
    expect(redactValue({ natsUrl: 'nats://tok@n1:4222,nats://n2:4222' })).toEqual({
      natsUrl: 'nats://***@n1:4222,nats://n2:4222',
    });
    expect(redactValue({ databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres' })).toEqual({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
    });
  });

  it('masks secret-named fields holding no URL whole, camelCase settings too (metricsPassword)', () => {
    expect(redactValue({ password: 'hunter2' })).toEqual({ password: '***' });
    expect(redactValue({ metricsPassword: 'hunter2', metricsUser: 'prom' })).toEqual({
      metricsPassword: '***',
      metricsUser: 'prom',
    });
  });

  it('masks nkey seeds, private keys and the seed of a .creds file wherever they appear', () => {
    const seed = `SU${'A'.repeat(40)}BCDEFGHIJKLMNOPQ`;
    expect(seed).toHaveLength(58);
    expect(redactString(`bad seed ${seed} given`)).toBe('bad seed S*** given');
    const creds = [
      '-----BEGIN NATS USER JWT-----',
      'eyJ0eXAi.public.jwt',
      '------END NATS USER JWT------',
      '-----BEGIN USER NKEY SEED-----',
      seed,
      '------END USER NKEY SEED------',
    ].join('\n');
    const out = redactString(`creds: ${creds}`);
    expect(out).not.toContain(seed);
    expect(out).toContain('eyJ0eXAi.public.jwt');
    const key = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----';
    expect(redactString(key)).toBe('-----BEGIN PRIVATE KEY-----***-----END PRIVATE KEY-----');
  });

  it('masks the new secret settings by name (nkey seed, creds, TLS key, mask key)', () => {
    expect(
      redactValue({ natsNkeySeed: 'x', natsCreds: 'y', natsTlsKey: 'z', maskKey: 'k', natsToken: 't' }),
    ).toEqual({ natsNkeySeed: '***', natsCreds: '***', natsTlsKey: '***', maskKey: '***', natsToken: '***' });
  });
});
