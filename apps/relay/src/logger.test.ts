import { Writable } from 'node:stream';
import type { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

/** A logger writing into an array of parsed JSON lines. */
function capture(level: string) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger(level, sink);
  return { logger, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const SECRET = 'hunter2-xyz';

describe('relay logger', () => {
  it('writes one JSON object per line with an ISO time, the level as a label and the service', () => {
    const { logger, records } = capture('info');
    logger.info({ slot: 'sluice' }, 'streaming');
    expect(records()).toEqual([
      {
        level: 'info',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        service: 'sluice',
        slot: 'sluice',
        msg: 'streaming',
      },
    ]);
  });

  it('drops debug lines at info and writes them at debug', () => {
    for (const [level, expected] of [
      ['info', ['info', 'warn']],
      ['debug', ['debug', 'info', 'warn']],
      ['warn', ['warn']],
    ] as const) {
      const { logger, records } = capture(level);
      logger.debug({}, 'd');
      logger.info({}, 'i');
      logger.warn({}, 'w');
      expect(
        records().map((r) => r['level']),
        level,
      ).toEqual(expected);
    }
  });

  it('masks passwords in the message, the merged object, errors with causes, format arguments and child bindings', () => {
    const { logger, lines } = capture('debug');
    const url = `postgres://app:${SECRET}@db:5432/app`;
    logger.info(
      { config: { databaseUrl: url, natsUrl: `nats://u:${SECRET}@n:4222` } },
      `connecting to ${url}`,
    );
    logger.error(
      { err: new Error(`failed at ${url}`, { cause: new Error(`password=${SECRET} rejected`) }) },
      'failed',
    );
    // pino's own signature: format arguments after the message.
    (logger as unknown as pino.Logger).warn({}, 'retrying %s with %o', url, { url });
    logger.child({ target: url }).child({ nested: { url } }).info({}, 'from a child');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line).not.toContain(SECRET);
    expect(lines[0]).toContain('postgres://app:***@db:5432/app');
    expect(lines[3]).toContain('"target":"postgres://app:***@db:5432/app"');
  });
});
