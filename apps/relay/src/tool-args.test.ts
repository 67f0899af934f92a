import { describe, expect, it } from 'vitest';
import { parseDemoArgs } from './demo.js';
import { parseTailArgs } from './tail.js';
import { splitToolArgs } from './tool-args.js';

describe('splitToolArgs', () => {
  it("separates the command's flags, positional arguments and relay settings", () => {
    expect(
      splitToolArgs(
        ['x.>', '--json', '--count=3', '--stream', 'S', '--embedded'],
        { json: 'switch', count: 'value' },
        'tail',
        'u',
      ),
    ).toEqual({
      own: { json: true, count: '3' },
      positional: ['x.>'],
      settings: ['--stream', 'S', '--embedded'],
    });
  });

  it('names a flag that misses its value', () => {
    expect(() => splitToolArgs(['--count'], { count: 'value' }, 'tail', 'u')).toThrow(
      /--count needs a value/,
    );
  });
});

describe('parseTailArgs', () => {
  it('takes one subject with wildcards, --from-start, --json and --count', () => {
    expect(parseTailArgs(['sluice.cdc.*.orders.>', '--from-start', '--json', '--count', '5'])).toEqual({
      subject: 'sluice.cdc.*.orders.>',
      fromStart: true,
      json: true,
      count: 5,
      settings: [],
    });
    expect(parseTailArgs([])).toMatchObject({ subject: null, fromStart: false, json: false, count: null });
  });

  it('refuses two subjects, an empty token and a count of 0', () => {
    expect(() => parseTailArgs(['a', 'b'])).toThrow(/one subject at most/);
    expect(() => parseTailArgs(['a..b'])).toThrow(/is not a NATS subject/);
    expect(() => parseTailArgs(['--count', '0'])).toThrow(/--count takes a whole number from 1 up/);
  });
});

describe('parseDemoArgs', () => {
  it('takes a rate in transactions a second (fractions too) and a count', () => {
    expect(parseDemoArgs([])).toEqual({ rate: 2, count: null, settings: [] });
    expect(parseDemoArgs(['--rate', '0.5', '--count', '10'])).toEqual({ rate: 0.5, count: 10, settings: [] });
  });

  it('refuses a rate of 0 or above 1000', () => {
    expect(() => parseDemoArgs(['--rate', '0'])).toThrow(/--rate takes transactions per second above 0/);
    expect(() => parseDemoArgs(['--rate=5000'])).toThrow(/--rate takes/);
  });
});
