import { ConfigError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { parseDlqArgs, parseWhen } from './dlq.js';

const NOW = Date.parse('2026-12-04T12:00:00Z');

describe('sluice dlq arguments', () => {
  it('reads a subcommand, an id, filters and relay settings', () => {
    expect(
      parseDlqArgs(['list', '--table', 'public.orders', '--since=2h', '--slot', 'other'], NOW),
    ).toMatchObject({
      action: 'list',
      table: 'public.orders',
      since: new Date('2026-12-04T10:00:00Z'),
      settings: ['--slot', 'other'],
    });
    expect(parseDlqArgs(['replay', '12'])).toMatchObject({ action: 'replay', id: 12, all: false });
    expect(parseDlqArgs(['replay', '--all', '--table', 'order'])).toMatchObject({
      all: true,
      table: 'order',
    });
    expect(parseDlqArgs(['discard', '--before', '2026-12-01T00:00:00Z'])).toMatchObject({
      before: new Date('2026-12-01T00:00:00Z'),
    });
  });

  it('refuses what does not fit the subcommand, with the usage', () => {
    const refused = (argv: string[]) => {
      try {
        parseDlqArgs(argv);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error(`accepted ${argv.join(' ')}`);
    };
    expect(refused([])).toContain('name a subcommand');
    expect(refused(['purge'])).toContain('unknown subcommand "purge"');
    expect(refused(['replay'])).toContain('replay takes an id or --all');
    expect(refused(['replay', '1', '--all'])).toContain('replay takes an id or --all');
    expect(refused(['discard'])).toContain('discard takes an id or --before <time>');
    expect(refused(['show'])).toContain('show needs the id');
    expect(refused(['list', '3'])).toContain('list does not take an id');
    expect(refused(['list', '--before', '1h'])).toContain('list does not take --before');
    expect(refused(['replay', 'abc'])).toContain('unexpected argument "abc"');
    expect(refused(['list', '--since', 'yesterday'])).toContain('--since takes a time');
    expect(refused(['list'].concat('--table'))).toContain('--table needs a value');
  });

  it('reads a time or a duration back from now', () => {
    expect(parseWhen('--since', '7d', NOW)).toEqual(new Date('2026-11-27T12:00:00Z'));
    expect(parseWhen('--since', '2026-12-04', NOW)).toEqual(new Date('2026-12-04T00:00:00Z'));
  });
});
