import { type ChangeEvent, ConfigError, type OutboxEvent } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import {
  compileOutboxTemplate,
  SubjectRouter,
  streamSubjects,
  subjectCovers,
  subjectFor,
} from './subjects.js';

const source = {
  lsn: '0/10',
  commitLsn: '0/20',
  xid: 7,
  commitTime: '2026-11-21T10:00:00.000Z',
  seq: 0,
  snapshot: null,
};

function change(schema: string, table: string, op: ChangeEvent['op'] = 'insert'): ChangeEvent {
  return {
    kind: 'change',
    id: '0/20-0',
    op,
    schema,
    table,
    key: { id: 1 },
    before: null,
    after: { id: 1 },
    unchanged: [],
    source,
  };
}

function outbox(aggregateType: string, type: string, aggregateId = '42'): OutboxEvent {
  return { kind: 'outbox', id: 'e1', aggregateType, aggregateId, type, payload: '{}', headers: {}, source };
}

describe('subjectFor', () => {
  it('routes a row change to <prefix>.cdc.<schema>.<table>.<op>', () => {
    expect(subjectFor(change('public', 'orders', 'update'))).toBe('sluice.cdc.public.orders.update');
    expect(subjectFor(change('public', 'orders', 'delete'), { subjectPrefix: 'acme.cdc' })).toBe(
      'acme.cdc.cdc.public.orders.delete',
    );
  });

  it('escapes quoted identifiers with dots, wildcards or spaces so each stays one token', () => {
    expect(subjectFor(change('my.schema', 'order*s'))).toBe('sluice.cdc.my%2Eschema.order%2As.insert');
    expect(subjectFor(change('public', 'Order Items'))).toBe('sluice.cdc.public.Order%20Items.insert');
    expect(subjectFor(change('we"ird', 'Ünïcode'))).toBe('sluice.cdc.we"ird.Ünïcode.insert');
    expect(subjectFor(change('a.b', 'c'))).not.toBe(subjectFor(change('a', 'b.c')));
    expect(subjectFor(change('a.b', 'c'))).not.toBe(subjectFor(change('a_b', 'c')));
  });

  it('gives distinct tables distinct subjects (seeded random schema and table names)', () => {
    let state = 42;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    const alphabet = ['a', '_', '.', ' ', '%', '2', 'E', '*', '>', 'é', '"', ','];
    const name = () =>
      Array.from(
        { length: 1 + Math.floor(random() * 5) },
        () => alphabet[Math.floor(random() * alphabet.length)],
      ).join('');
    const seen = new Map<string, string>();
    for (let i = 0; i < 5000; i++) {
      const [schema, table] = [name(), name()];
      const subject = subjectFor(change(schema, table));
      expect(subject.split('.')).toHaveLength(5);
      const key = JSON.stringify([schema, table]);
      expect(seen.get(subject) ?? key).toBe(key);
      seen.set(subject, key);
    }
  });

  it('routes an outbox event by the default template to <prefix>.outbox.<aggregatetype>.<type>', () => {
    expect(subjectFor(outbox('order', 'OrderPaid'))).toBe('sluice.outbox.order.OrderPaid');
    expect(subjectFor(outbox('order.v2', 'order paid'))).toBe('sluice.outbox.order%2Ev2.order%20paid');
    expect(subjectFor(outbox('', ''))).toBe('sluice.outbox.%.%');
  });

  it('fills a custom template, including the aggregate id', () => {
    const options = {
      subjectPrefix: 'p',
      outboxSubjectTemplate: 'events.{aggregatetype}.{aggregateid}.{type}',
    };
    expect(subjectFor(outbox('order', 'Paid', 'a.b'), options)).toBe('events.order.a%2Eb.Paid');
  });
});

describe('compileOutboxTemplate', () => {
  it('rejects an unknown placeholder, naming the setting', () => {
    expect(() => compileOutboxTemplate('{prefix}.{aggregate}.{type}', 'sluice')).toThrow(ConfigError);
    expect(() => compileOutboxTemplate('{prefix}.{aggregate}.{type}', 'sluice')).toThrow(
      /outboxSubjectTemplate: unknown placeholder \{aggregate\}/,
    );
  });

  it('rejects a template that does not make a subject (empty token, wildcard, space)', () => {
    expect(() => compileOutboxTemplate('{prefix}..{type}', 'sluice')).toThrow(ConfigError);
    expect(() => compileOutboxTemplate('{prefix}.*.{type}', 'sluice')).toThrow(ConfigError);
    expect(() => compileOutboxTemplate('{prefix}.a b', 'sluice')).toThrow(ConfigError);
  });

  it('rejects a placeholder sharing its token with other text, where values could meet', () => {
    expect(() => compileOutboxTemplate('{prefix}.o.{aggregatetype}-{type}', 'sluice')).toThrow(
      /puts a placeholder inside the token "\{aggregatetype\}-\{type\}" with other text/,
    );
    expect(() => compileOutboxTemplate('x{prefix}.o', 'sluice')).toThrow(ConfigError);
  });

  it('rejects a prefix with wildcards or empty tokens', () => {
    expect(() => compileOutboxTemplate('{prefix}.x', 'sluice.>')).toThrow(/subjectPrefix/);
    expect(() => compileOutboxTemplate('{prefix}.x', '')).toThrow(/subjectPrefix/);
  });
});

describe('streamSubjects', () => {
  it('captures <prefix>.> when the outbox template stays under the prefix', () => {
    expect(streamSubjects('sluice', '{prefix}.outbox.{aggregatetype}.{type}')).toEqual(['sluice.>']);
  });

  it('adds the wildcard form of a template that publishes outside the prefix', () => {
    expect(streamSubjects('sluice', 'events.{aggregatetype}.{type}')).toEqual(['sluice.>', 'events.*.*']);
  });
});

describe('subjectCovers', () => {
  it('matches literal, "*" and ">" tokens the way nats-server does', () => {
    expect(subjectCovers('sluice.>', 'sluice.cdc.a.b.insert')).toBe(true);
    expect(subjectCovers('sluice.>', 'sluice.>')).toBe(true);
    expect(subjectCovers('>', 'sluice.>')).toBe(true);
    expect(subjectCovers('sluice.*', 'sluice.a.b')).toBe(false);
    expect(subjectCovers('sluice.*.*', 'sluice.*.*')).toBe(true);
    expect(subjectCovers('sluice.cdc.>', 'sluice.>')).toBe(false);
    expect(subjectCovers('sluice.a', 'sluice.*')).toBe(false);
    expect(subjectCovers('sluice.>', 'sluice')).toBe(false);
  });
});

describe('SubjectRouter', () => {
  it('returns the same cached route object for the same schema, table and op', () => {
    const router = new SubjectRouter();
    const first = router.change('public', 'orders', 'insert');
    expect(router.change('public', 'orders', 'insert')).toBe(first);
    expect(first).toEqual({
      subject: 'sluice.cdc.public.orders.insert',
      ceType: 'io.sluice.cdc.insert',
      ceSubject: 'public.orders',
    });
    expect(router.change('public', 'orders', 'delete').subject).toBe('sluice.cdc.public.orders.delete');
  });

  it('keeps CR/LF out of ce-subject for a table whose quoted name contains a newline', () => {
    expect(new SubjectRouter().change('public', 'bad\nname', 'insert').ceSubject).toBe('public."bad name"');
  });

  it('writes ce-subject as SQL, quoted where needed, so "a.b".c and a."b.c" differ', () => {
    const router = new SubjectRouter();
    expect(router.change('a.b', 'c', 'insert').ceSubject).toBe('"a.b".c');
    expect(router.change('a', 'b.c', 'insert').ceSubject).toBe('a."b.c"');
  });

  it('routes outbox events per aggregate id when the template uses {aggregateid}', () => {
    const router = new SubjectRouter({ outboxSubjectTemplate: '{prefix}.o.{aggregatetype}.{aggregateid}' });
    expect(router.outbox('order', 'Paid', '1')).toBe('sluice.o.order.1');
    expect(router.outbox('order', 'Paid', '2')).toBe('sluice.o.order.2');
  });
});
