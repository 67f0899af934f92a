import { describe, expect, it } from 'vitest';
import { redactString, redactValue } from './redact.js';

describe('redaction', () => {
  it('masks the password of a URL and keeps the rest readable', () => {
    expect(redactString('connect postgres://app:s3cr%40t@db:5432/prod failed')).toBe(
      'connect postgres://app:***@db:5432/prod failed',
    );
    expect(redactString('nats://user:pw@127.0.0.1:4222')).toBe('nats://user:***@127.0.0.1:4222');
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
});
