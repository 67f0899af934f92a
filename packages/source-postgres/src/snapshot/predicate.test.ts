import { describe, expect, it } from 'vitest';
import { checkPredicateText, foreignPart, type PlanNode, PredicateError } from './predicate.js';

const rejection = (predicate: string): string => {
  try {
    checkPredicateText(predicate);
  } catch (err) {
    expect(err).toBeInstanceOf(PredicateError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(predicate)}`);
};

describe('checkPredicateText', () => {
  it('accepts conditions on columns, with strings, quoted identifiers, casts and nested parentheses', () => {
    for (const predicate of [
      'id > 10',
      "status in ('new', 'paid') and (total > 5 or note is null)",
      `"Order Date" >= '2026-01-01'::timestamp with time zone`,
      "note = 'it''s (not) a ; problem -- inside a string'",
      `"odd "" name; --" = 1`,
      "lower(email) like '%@example.com'",
      'id % 10 = 0',
    ]) {
      expect(() => checkPredicateText(predicate), predicate).not.toThrow();
    }
  });

  it('refuses what could end the where clause, the statement or the rest of the query', () => {
    // Balanced overall, yet it would close the relay's `where (` and open a second group.
    expect(rejection('id > 1) or (true')).toMatch(/closes a parenthesis it did not open/);
    expect(rejection('id > 1; drop table orders')).toMatch(/";"/);
    expect(rejection('true) union all (select 1')).toMatch(/closes a parenthesis|subquery/);
    expect(rejection('id > 1)')).toMatch(/closes a parenthesis it did not open \(at character 7\)/);
    expect(rejection('(id > 1')).toMatch(/leaves a parenthesis open/);
    expect(rejection('id > 1 -- and the rest')).toMatch(/comment/);
    expect(rejection('id > 1 /* and the rest */')).toMatch(/comment/);
    expect(rejection("note = 'unterminated")).toMatch(/unterminated string/);
    expect(rejection('"unterminated = 1')).toMatch(/unterminated quoted identifier/);
  });

  it('refuses backslashes and dollar quotes, whose meaning depends on server settings', () => {
    expect(rejection("note = E'it\\'s'")).toMatch(/backslash/);
    expect(rejection('note = $$x$$')).toMatch(/"\$"/);
    expect(rejection('id = $1')).toMatch(/"\$"/);
  });

  it('refuses subqueries: a predicate filters its own table and reads nothing else', () => {
    expect(rejection('id in (select id from secrets)')).toMatch(/subquery \("select"\)/);
    expect(rejection('id in (table secrets)')).toMatch(/subquery \("table"\)/);
    expect(rejection('(id) in (values (1))')).toMatch(/subquery \("values"\)/);
    expect(rejection('exists (SELECT 1)')).toMatch(/subquery/);
  });

  it('refuses an empty predicate', () => {
    expect(rejection('   ')).toMatch(/is empty/);
  });
});

describe('foreignPart', () => {
  const allowed = new Set(['public.orders', 'public.orders_2026']);
  const scan = (relation: string, extra: Partial<PlanNode> = {}): PlanNode => ({
    'Node Type': 'Seq Scan',
    'Relation Name': relation,
    Schema: 'public',
    ...extra,
  });

  it('accepts scans of the table and its partitions (EXPLAIN (VERBOSE, FORMAT JSON) shapes)', () => {
    expect(foreignPart(scan('orders'), allowed)).toBeUndefined();
    expect(
      foreignPart(
        { 'Node Type': 'Append', Plans: [scan('orders_2026', { 'Parent Relationship': 'Member' })] },
        allowed,
      ),
    ).toBeUndefined();
  });

  it('names what else a plan reads: another table, a subplan, a function or a CTE', () => {
    expect(
      foreignPart(
        {
          'Node Type': 'Hash Semi Join',
          Plans: [scan('orders'), { 'Node Type': 'Hash', Plans: [scan('secrets')] }],
        },
        allowed,
      ),
    ).toBe('it reads public.secrets');
    expect(
      foreignPart(
        scan('orders', {
          Plans: [scan('orders', { 'Parent Relationship': 'SubPlan', 'Subplan Name': 'SubPlan 1' })],
        }),
        allowed,
      ),
    ).toBe('it holds a subquery');
    expect(foreignPart({ 'Node Type': 'Function Scan' }, allowed)).toBe('it needs a Function Scan');
    expect(
      foreignPart(
        { 'Node Type': 'Nested Loop', Plans: [scan('orders'), { 'Node Type': 'CTE Scan' }] },
        allowed,
      ),
    ).toBe('it needs a CTE Scan');
  });
});
