import { ConfigError } from '@sluice/core';
import type { BackfillRequest } from '@sluice/source-postgres';
import { describe, expect, it } from 'vitest';
import { formatRequests, parseBackfillArgs } from './backfill.js';

describe('parseBackfillArgs', () => {
  it('takes tables written as in SQL and SLUICE_TABLES, a --where in either form, and passes relay settings on', () => {
    expect(
      parseBackfillArgs([
        'Public.Orders',
        '--slot',
        'other',
        'app."Order Items"',
        '--where=id > 3',
        '--embedded',
      ]),
    ).toEqual({
      action: 'request',
      tables: [
        { schema: 'public', table: 'orders' },
        { schema: 'app', table: 'Order Items' },
      ],
      where: 'id > 3',
      cancel: null,
      settings: ['--slot', 'other', '--embedded'],
    });
    expect(parseBackfillArgs(['public.orders', '--where', "note = 'a b'"]).where).toBe("note = 'a b'");
  });

  it('takes --list and --cancel <id> alone', () => {
    expect(parseBackfillArgs(['--list', '--database-url=postgres://x/y'])).toMatchObject({
      action: 'list',
      settings: ['--database-url=postgres://x/y'],
    });
    expect(parseBackfillArgs(['--cancel', '12'])).toMatchObject({ action: 'cancel', cancel: 12 });
  });

  it('says what is wrong with the arguments', () => {
    const message = (argv: string[]) => {
      try {
        parseBackfillArgs(argv);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error(`accepted ${argv.join(' ')}`);
    };
    expect(message([])).toMatch(/name the tables to backfill, or --list, or --cancel <id>/);
    expect(message(['public.orders.x'])).toMatch(/table `public\.orders\.x` has 3 dot-separated parts/);
    expect(message(['public.orders', '--list'])).toMatch(/go alone/);
    expect(message(['--where', 'id > 1'])).toMatch(/--where goes with the tables/);
    expect(message(['--cancel', 'abc'])).toMatch(/--cancel takes a request id/);
    expect(message(['public.orders', '--where'])).toMatch(/--where needs a value/);
  });
});

describe('formatRequests', () => {
  const at = (s: string) => new Date(`2026-12-04T${s}Z`);
  const table = {
    schema: 'public',
    table: 'orders',
    position: 0,
    lastKey: null,
    finishedAt: null,
  };
  const request = (over: Partial<BackfillRequest>): BackfillRequest => ({
    id: 3,
    slot: 'sluice',
    predicate: null,
    state: 'running',
    requestedAt: at('16:30:12'),
    requestedBy: 'ops',
    startedAt: at('16:30:13'),
    finishedAt: null,
    updatedAt: at('16:30:17'),
    error: null,
    tables: [],
    ...over,
  });

  it('shows each request with its tables: state, rows read of the estimate, percent and rate', () => {
    const text = formatRequests(
      'sluice',
      [
        request({
          id: 2,
          state: 'failed',
          finishedAt: at('16:20:09'),
          error: 'public.items does not exist',
          tables: [
            {
              ...table,
              table: 'items',
              state: 'pending',
              rowsRead: 0,
              rowsEstimate: null,
              startedAt: null,
              updatedAt: at('16:20:09'),
            },
          ],
        }),
        request({
          predicate: "created_at >= '2026-01-01'",
          tables: [
            {
              ...table,
              state: 'running',
              rowsRead: 12_000,
              rowsEstimate: 50_000,
              startedAt: at('16:30:13'),
              updatedAt: at('16:30:16'),
            },
          ],
        }),
      ],
      at('16:30:17'),
    );
    expect(text.split('\n')).toEqual([
      'backfill requests of slot "sluice" (unfinished, and the 20 most recent finished):',
      '#2  failed  requested 2026-12-04 16:30:12Z by ops  finished 2026-12-04 16:20:09Z',
      '    error: public.items does not exist',
      '    public.items   pending',
      "#3  running  requested 2026-12-04 16:30:12Z by ops  where created_at >= '2026-01-01'",
      '    public.orders  running  12000 of ~50000 rows (24%), 3000 rows/s',
    ]);
  });
});
