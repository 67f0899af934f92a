import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ColumnRuleError,
  checkColumnRules,
  columnRulesFromConfig,
  compileColumnRules,
  createColumnFilter,
  parseColumnRules,
  REDACTED,
  type TableShape,
} from './column-policy.js';
import type { ChangeEvent, OutboxEvent } from './events.js';
import { rawJson } from './json.js';

const USERS: TableShape = {
  columns: ['id', 'email', 'password', 'ssn', 'Nick Name', 'prefs'],
  keyColumns: ['id'],
};
const hmac = (text: string) => createHmac('sha256', 'k'.repeat(32)).update(text).digest('hex');

function filterFor(text: string, shape: TableShape = USERS) {
  const rules = parseColumnRules(text);
  for (const r of rules) expect(checkColumnRules(r, shape)).toEqual([]);
  return createColumnFilter(
    rules.map((r) => compileColumnRules(r, shape)),
    hmac,
  );
}

function change(over: Partial<ChangeEvent>): ChangeEvent {
  return {
    kind: 'change',
    id: 'x',
    op: 'update',
    schema: 'public',
    table: 'users',
    key: { id: '1' },
    before: {
      id: '1',
      email: 'old@x',
      password: 'p0',
      ssn: '111',
      'Nick Name': 'a',
      prefs: rawJson('{"a":1}'),
    },
    after: {
      id: '1',
      email: 'new@x',
      password: 'p1',
      ssn: '111',
      'Nick Name': 'b',
      prefs: rawJson('{"a":2}'),
    },
    changed: ['email', 'password', 'Nick Name', 'prefs'],
    unchanged: [],
    source: { lsn: '0/1', commitLsn: '0/2', xid: 1, commitTime: '', seq: 0, snapshot: null },
    ...over,
  };
}

describe('column rules: reading', () => {
  it('reads tables and columns as SQL: unquoted names fold, quoted ones keep case, ; and , inside quotes', () => {
    const [users, items] = parseColumnRules(
      'Public.Users: -Password, -"Nick Name", email=HASH; public."a;b": "x,y", "q=r"=redact',
    );
    expect(users).toMatchObject({
      table: { schema: 'public', table: 'users' },
      mode: 'deny',
      drop: ['password', 'Nick Name'],
    });
    expect([...(users?.mask ?? [])]).toEqual([['email', 'hash']]);
    expect(items).toMatchObject({ table: { schema: 'public', table: 'a;b' }, mode: 'allow', keep: ['x,y'] });
    expect([...(items?.mask ?? [])]).toEqual([['q=r', 'redact']]);
  });

  it('reads the config file form: table → list or comma string', () => {
    const rules = columnRulesFromConfig({ 'public.users': ['-password', 'email=hash'], orders: 'id, total' });
    expect(rules.map((r) => [r.table.table, r.mode])).toEqual([
      ['users', 'deny'],
      ['orders', 'allow'],
    ]);
  });

  it('says what is wrong with a rule, quoting it', () => {
    const error = (text: string) => {
      try {
        parseColumnRules(text);
      } catch (err) {
        expect(err).toBeInstanceOf(ColumnRuleError);
        return (err as Error).message;
      }
      throw new Error(`no error for ${text}`);
    };
    expect(error('public.users -password')).toContain('has no ":" between the table and its columns');
    expect(error('public.users: id, -password')).toContain(
      'public.users mixes kept columns (id) and dropped ones (-password): list the columns to keep (an allow-list) or the columns to drop (a deny-list), not both',
    );
    expect(error('public.users: email=md5')).toContain(
      'unknown mask "md5"; write column=hash or column=redact',
    );
    expect(error('public.users: -email=hash')).toContain('a dropped column has no value to mask');
    expect(error('public.users: email, EMAIL')).toContain('names column email twice');
    expect(error('users: -a; public.users: -b')).toContain('public.users is given twice');
    expect(error('public.users: Nick Name')).toContain('double-quote the name');
    expect(error('public.users:')).toContain('has no column rules');
  });
});

describe('column rules: checked against the table', () => {
  it('names a column the table does not have, with the columns it has and a case hint', () => {
    const [rules] = parseColumnRules('public.users: -pasword, -nick name'.replace('nick name', 'NICK'));
    expect(checkColumnRules(rules!, USERS)).toEqual([
      'public.users has no column pasword; its columns: id, email, password, ssn, "Nick Name", prefs',
      'public.users has no column nick; its columns: id, email, password, ssn, "Nick Name", prefs',
    ]);
    const [quoted] = parseColumnRules('public.users: -"nick name"');
    expect(checkColumnRules(quoted!, USERS)[0]).toContain(
      '(did you mean "Nick Name"? quote it to keep its case)',
    );
  });

  it('refuses to drop or mask a key column: events are keyed, ordered and deduplicated by it', () => {
    const [rules] = parseColumnRules('public.users: -id');
    expect(checkColumnRules(rules!, USERS)).toEqual([
      'public.users.id is a key column: events are keyed, ordered and deduplicated by it, so it cannot be dropped or masked; remove it from the rules (or capture a view of the data without it)',
    ]);
    const [masked] = parseColumnRules('public.users: id=hash');
    expect(checkColumnRules(masked!, USERS)).toHaveLength(1);
  });
});

describe('column rules: applied to events', () => {
  it('deny-list and masks: drops, hashes with the HMAC and redacts in after, before and the changed list', () => {
    const out = filterFor('public.users: -password, -ssn, email=hash, "Nick Name"=redact')(change({}));
    expect(out).toMatchObject({
      key: { id: '1' },
      after: { id: '1', email: hmac('new@x'), 'Nick Name': REDACTED, prefs: rawJson('{"a":2}') },
      before: { id: '1', email: hmac('old@x'), 'Nick Name': REDACTED, prefs: rawJson('{"a":1}') },
      changed: ['email', 'Nick Name', 'prefs'],
    });
    expect(Object.keys((out as ChangeEvent).after ?? {})).toEqual(['id', 'email', 'Nick Name', 'prefs']);
    expect(JSON.stringify(out)).not.toMatch(/p0|p1|111|new@x|old@x/);
  });

  it('allow-list: only the listed columns and the key pass; unchanged TOAST names are filtered too', () => {
    const out = filterFor('public.users: email, prefs=hash')(
      change({ op: 'insert', before: null, changed: undefined, unchanged: ['ssn', 'prefs'] }),
    ) as ChangeEvent;
    expect(out.after).toEqual({ id: '1', email: 'new@x', prefs: hmac('{"a":2}') });
    expect(out.before).toBeNull();
    expect(out.unchanged).toEqual(['prefs']);
    expect(out.changed).toBeUndefined();
  });

  it('masks snapshot reads and delete old rows the same way; a null stays null', () => {
    const filter = filterFor('public.users: email=hash, -password');
    const read = filter(
      change({
        op: 'read',
        before: null,
        changed: undefined,
        after: { id: '2', email: null, password: 'x' },
      }),
    );
    expect((read as ChangeEvent).after).toEqual({ id: '2', email: null });
    const del = filter(
      change({
        op: 'delete',
        after: null,
        changed: undefined,
        before: { id: '1', email: 'e', password: 'p' },
      }),
    );
    expect((del as ChangeEvent).before).toEqual({ id: '1', email: hmac('e') });
  });

  it('leaves other tables, truncates and outbox events as they are (the same object)', () => {
    const filter = filterFor('public.users: -password');
    const other = change({ table: 'orders' });
    expect(filter(other)).toBe(other);
    const truncate = change({ op: 'truncate', key: null, before: null, after: null });
    expect(filter(truncate)).toBe(truncate);
    const outbox: OutboxEvent = {
      kind: 'outbox',
      id: 'o',
      aggregateType: 'a',
      aggregateId: 'b',
      type: 't',
      payload: '{"password":"kept: outbox payloads are the application’s own"}',
      headers: {},
      source: other.source,
    };
    expect(filter(outbox)).toBe(outbox);
  });

  it('keeps a column named __proto__ as a field', () => {
    const shape = { columns: ['id', '__proto__', 'x'], keyColumns: ['id'] };
    const out = filterFor(
      'public.users: -x',
      shape,
    )(
      change({ before: null, changed: undefined, after: JSON.parse('{"id":"1","__proto__":"v","x":"y"}') }),
    ) as ChangeEvent;
    expect(Object.keys(out.after ?? {})).toEqual(['id', '__proto__']);
  });
});
