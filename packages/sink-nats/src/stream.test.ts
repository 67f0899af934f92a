import { DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { PermanentError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { checkExistingStream, formatMs, StreamMismatchError, type StreamSpec } from './stream.js';

// The stream ownership rules on hand-built configs; test/sink-nats.test.ts runs them against
// a real nats-server and checks that the stream is left exactly as it was.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const spec: StreamSpec = {
  name: 'ORDERS',
  subjects: ['sluice.>'],
  storage: 'file',
  duplicateWindowMs: 2 * HOUR,
  replicas: 3,
  maxAgeMs: 7 * DAY,
  maxBytes: -1,
};

/** A stream as an operator might have made it, matching the spec unless patched. */
function stream(patch: Partial<StreamConfig> = {}): StreamConfig {
  return {
    name: 'ORDERS',
    subjects: ['sluice.>'],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(2 * HOUR),
    num_replicas: 3,
    max_age: nanos(7 * DAY),
    max_bytes: -1,
    max_msgs: -1,
    max_msgs_per_subject: -1,
    max_msg_size: -1,
    max_consumers: -1,
    no_ack: false,
    sealed: false,
    deny_delete: false,
    deny_purge: false,
    allow_rollup_hdrs: false,
    allow_direct: false,
    mirror_direct: false,
    ...patch,
  } as StreamConfig;
}

function mismatch(config: StreamConfig): StreamMismatchError {
  try {
    checkExistingStream(config, spec);
  } catch (err) {
    if (err instanceof StreamMismatchError) return err;
    throw err;
  }
  throw new Error('expected a StreamMismatchError');
}

describe('checkExistingStream', () => {
  it('accepts a stream that fits, with nothing to note', () => {
    expect(checkExistingStream(stream(), spec)).toEqual([]);
  });

  it("accepts what the operator chose beyond the relay's needs: more subjects, a longer window, more replicas, other limits", () => {
    const notes = checkExistingStream(
      stream({
        subjects: ['legacy.>', '>'],
        duplicate_window: nanos(DAY),
        num_replicas: 5,
        max_age: nanos(HOUR * 3),
        max_bytes: 1024 ** 3,
      }),
      spec,
    );
    expect(notes).toEqual([
      'stream ORDERS keeps its own retention (max_age 3h, max_bytes 1073741824): SLUICE_STREAM_MAX_AGE and SLUICE_STREAM_MAX_BYTES apply only to a stream the relay creates',
      'stream ORDERS keeps its 5 replicas (more than SLUICE_STREAM_REPLICAS=3)',
    ]);
  });

  it('refuses subjects that do not cover the relay, naming the nats stream edit command that keeps the existing ones', () => {
    const err = mismatch(stream({ subjects: ['legacy.>', 'sluice.cdc.>'] }));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe(
      "stream ORDERS exists but its subjects (legacy.>, sluice.cdc.>) do not cover sluice.>, where the relay publishes\n  fix: the relay never changes a stream it did not create; run: nats stream edit ORDERS --subjects 'legacy.>,sluice.cdc.>,sluice.>'\n  or point SLUICE_STREAM at a stream that captures them, or set SLUICE_SUBJECT_PREFIX (and SLUICE_OUTBOX_SUBJECT) to subjects this stream captures",
    );
  });

  it('refuses a duplicate window shorter than the relay needs, naming the window to set or the setting to lower', () => {
    const err = mismatch(stream({ duplicate_window: nanos(2 * 60_000) }));
    expect(err.message).toContain(
      "its duplicate window (2m) is shorter than the relay's 2h: a replay after a crash older than that would be stored twice",
    );
    expect(err.message).toContain('run: nats stream edit ORDERS --dupe-window 2h\n');
    expect(err.message).toContain('or set SLUICE_DUPLICATE_WINDOW to at most 2m');
  });

  it('names --max-age too when the stream keeps messages for less than the window the relay needs', () => {
    const err = mismatch(stream({ duplicate_window: nanos(60_000), max_age: nanos(HOUR) }));
    expect(err.message).toContain('(and its max_age, 1h, caps the window)');
    expect(err.message).toContain('nats stream edit ORDERS --max-age 2h --dupe-window 2h');
  });

  it('refuses fewer replicas than configured, rather than run with less durability than asked for', () => {
    const err = mismatch(stream({ num_replicas: 1 }));
    expect(err.message).toContain(
      'it has 1 replica(s), fewer than the 3 the relay is configured for: acknowledged events would not survive the loss of a server as configured',
    );
    expect(err.message).toContain('nats stream edit ORDERS --replicas 3');
    expect(err.message).toContain('or set SLUICE_STREAM_REPLICAS=1');
  });

  it('reports every problem at once, with one command that fixes them all', () => {
    const err = mismatch(
      stream({ subjects: ['legacy.>'], duplicate_window: nanos(60_000), num_replicas: 1, no_ack: true }),
    );
    expect(err.message).toContain(
      "nats stream edit ORDERS --ack --subjects 'legacy.>,sluice.>' --dupe-window 2h --replicas 3",
    );
    for (const problem of ['no_ack', 'do not cover', 'duplicate window', 'replica(s)']) {
      expect(err.message).toContain(problem);
    }
  });

  it('refuses what no edit can fix: another storage, a mirror, a sealed stream', () => {
    expect(mismatch(stream({ storage: StorageType.Memory })).message).toMatch(
      /uses memory storage while the sink is configured for file/,
    );
    expect(mismatch(stream({ mirror: { name: 'UPSTREAM' } })).message).toMatch(/is a mirror/);
    expect(mismatch(stream({ sealed: true })).message).toMatch(/is sealed/);
  });
});

describe('formatMs', () => {
  it('writes the largest whole unit nats stream edit and SLUICE_* durations both accept', () => {
    expect([7 * DAY, 2 * HOUR, 90_000, 1500, 0].map(formatMs)).toEqual([
      '7d',
      '2h',
      '90s',
      '1500ms',
      'unlimited',
    ]);
  });
});
