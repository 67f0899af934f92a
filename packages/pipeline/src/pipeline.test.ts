import {
  ConfigError,
  type EventLabels,
  noopMetrics,
  PermanentError,
  type RelayEvent,
  RetriableError,
  WithdrawnError,
} from '@sluice/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeadLetterFailedError, PipelineStoppedError, PublishFailedError } from './errors.js';
import { ControlledSink, change, outbox, settled, turn, until } from './fake-sink.test-support.js';
import type { PipelineOptions } from './options.js';
import { createPipeline } from './pipeline.js';

const byNumber = (a: number, b: number) => a - b;

function setup(overrides: Partial<PipelineOptions<number>> = {}) {
  const sink = new ControlledSink();
  const acknowledged: number[] = [];
  const fatal: Error[] = [];
  const pipeline = createPipeline<number>({
    sink,
    source: { acknowledge: (cursor) => acknowledged.push(cursor) },
    onFatal: (err) => fatal.push(err),
    compareCursor: byNumber,
    retry: { initialDelayMs: 0, maxDelayMs: 0 },
    ...overrides,
  });
  return { sink, acknowledged, fatal, pipeline, output: pipeline.output };
}

let closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers) close();
  closers = [];
  vi.useRealTimers();
});
function tracked<T extends { pipeline: { close(): void } }>(s: T): T {
  closers.push(() => s.pipeline.close());
  return s;
}

describe('in-flight window', () => {
  it('holds push back at maxInFlightEvents until a stored event frees room', async () => {
    const { sink, output } = tracked(setup({ maxInFlightEvents: 3 }));
    await output.push(change('e1', { key: { id: 1 } }));
    await output.push(change('e2', { key: { id: 2 } }));
    const third = output.push(change('e3', { key: { id: 3 } }));
    expect(await settled(third)).toBe(false);
    expect(sink.outstandingIds()).toEqual(['e1', 'e2', 'e3']);
    sink.succeed();
    await until(() => sink.outstanding.length === 2, 'e1 stored');
    expect(await settled(third)).toBe(true);
  });

  it('holds push back at maxInFlightBytes and still admits one event larger than the cap', async () => {
    const { sink, output, pipeline } = tracked(
      setup({ maxInFlightBytes: 100, eventBytes: (e) => (e.id === 'huge' ? 500 : 40) }),
    );
    await output.push(change('e1', { key: { id: 1 } }));
    await output.push(change('e2', { key: { id: 2 } }));
    const third = output.push(change('e3', { key: { id: 3 } }));
    expect(await settled(third)).toBe(false);
    expect(pipeline.stats().inFlightBytes).toBe(120);
    sink.succeed();
    sink.succeed();
    sink.succeed();
    await third;
    await until(() => pipeline.stats().inFlightEvents === 0, 'window empty');

    const huge = output.push(change('huge', { key: { id: 4 } }));
    expect(await settled(huge)).toBe(false);
    await until(() => sink.outstanding.length === 1, 'the oversized event to be published');
    sink.succeed();
    await huge;
    expect(sink.stored.map((e) => e.id)).toEqual(['e1', 'e2', 'e3', 'huge']);
  });
});

describe('publishing', () => {
  it('in key ordering, keeps one publish per key in flight while other keys proceed, and preserves each key’s order', async () => {
    const { sink, output } = tracked(setup({ ordering: 'key' }));
    await output.push(change('a1', { key: { id: 'a' } }));
    await output.push(change('b1', { key: { id: 'b' } }));
    await output.push(change('a2', { key: { id: 'a' } }));
    await output.push(outbox('o1', 'order', '42'));
    await output.push(outbox('o2', 'order', '42'));
    await until(() => sink.outstanding.length === 3, 'three keys in flight');
    expect(sink.outstandingIds()).toEqual(['a1', 'b1', 'o1']);
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'a1'));
    await until(() => sink.outstandingIds().includes('a2'), 'a2 published after a1');
    expect(sink.concurrentSameKey).toBeUndefined();
  });

  it('in commit ordering (the default), holds everything behind an event whose key is in flight', async () => {
    const { sink, output } = tracked(setup());
    await output.push(change('a1', { key: { id: 'a' } }));
    await output.push(change('b1', { key: { id: 'b' } }));
    await output.push(change('a2', { key: { id: 'a' } }));
    await output.push(change('c1', { key: { id: 'c' } }));
    await until(() => sink.outstanding.length === 2, 'a1 and b1 in flight');
    await turn();
    expect(sink.outstandingIds()).toEqual(['a1', 'b1']);
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'a1'));
    await until(() => sink.outstandingIds().includes('c1'), 'a2 then c1 published');
    expect(sink.outstandingIds()).toEqual(['b1', 'a2', 'c1']);
    expect(sink.concurrentSameKey).toBeUndefined();
  });

  it('in commit ordering with a sink that keeps call order, hands it every event at once, same keys included', async () => {
    const sink = Object.assign(new ControlledSink(), { keepsCallOrder: true });
    const { output } = tracked(setup({ sink }));
    await output.push(change('a1', { key: { id: 'a' } }));
    await output.push(change('b1', { key: { id: 'b' } }));
    await output.push(change('a2', { key: { id: 'a' } }));
    await until(() => sink.outstanding.length === 3, 'all three published');
    expect(sink.outstandingIds()).toEqual(['a1', 'b1', 'a2']);
  });

  it('with a sink that keeps call order, sets a dead letter aside there and parks what the sink withdraws', async () => {
    const asides: string[] = [];
    const sink = Object.assign(new ControlledSink(), {
      keepsCallOrder: true,
      setAside(event: RelayEvent, withdraw?: (later: RelayEvent) => boolean) {
        asides.push(event.id);
        // The sink held everything after the refused event; it gives back those of a parked key.
        for (const call of [...sink.outstanding]) {
          if (withdraw?.(call.event)) call.reject(new WithdrawnError(call.event.id));
        }
      },
    });
    const parkedKeys = new Set<string>();
    const parked: string[] = [];
    const { output, acknowledged } = tracked(
      setup({
        sink,
        onPermanentFailure: async () => {
          parkedKeys.add('r\u0000public\u0000orders\u0000{"id":"a"}');
          return 'dead-lettered';
        },
        parking: {
          mayBeParked: (key) => parkedKeys.has(key),
          park: async (event) => {
            parked.push(event.id);
            return 'parked';
          },
        },
      }),
    );
    await output.push(change('a1', { key: { id: 'a' } }));
    await output.push(change('b1', { key: { id: 'b' } }));
    await output.push(change('a2', { key: { id: 'a' } }));
    output.commit(1);
    await until(() => sink.outstanding.length === 3, 'all three published');
    sink.fail(new PermanentError('too large', { code: 'too_large' }));
    await until(() => asides.length === 1, 'a1 set aside in the sink');
    await until(() => parked.length === 1, 'a2 parked');
    expect(parked).toEqual(['a2']);
    expect(sink.outstandingIds()).toEqual(['b1']);
    sink.succeed();
    await until(() => acknowledged.length === 1, 'the transaction acknowledged');
  });

  it('in commit ordering, starts a truncate after its table drains and the rest of the stream after it', async () => {
    const { sink, output } = tracked(setup());
    await output.push(change('r1', { key: { id: 1 } }));
    await output.push(change('c1', { table: 'customers', key: { id: 1 } }));
    await output.push(change('trunc', { op: 'truncate' }));
    await output.push(change('c2', { table: 'customers', key: { id: 2 } }));
    await until(() => sink.outstanding.length === 2, 'r1 and c1 in flight');
    await turn();
    expect(sink.outstandingIds()).toEqual(['r1', 'c1']);
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'r1'));
    await until(() => sink.outstandingIds().includes('c2'), 'truncate then c2 published');
    expect(sink.outstandingIds()).toEqual(['c1', 'trunc', 'c2']);
  });

  it('issues every publish that became ready in one turn synchronously, as one socket write', async () => {
    const { sink, output } = tracked(setup());
    for (let i = 0; i < 50; i++) await output.push(change(`e${i}`, { key: { id: i } }));
    await until(() => sink.calls.length === 50, 'all published');
    expect(sink.writes).toBe(1);
  });

  it('retries a retriable failure with the same event object while later events of its key wait', async () => {
    const retries: string[] = [];
    const metrics = { ...noopMetrics, publishRetry: (reason: string) => retries.push(reason) };
    const { sink, output, acknowledged } = tracked(setup({ metrics }));
    const first = change('a1', { key: { id: 'a' } });
    await output.push(first);
    await output.push(change('a2', { key: { id: 'a' } }));
    output.commit(1);
    await until(() => sink.outstanding.length === 1, 'a1 published');
    sink.fail(new RetriableError('PubAck timed out', { code: 'timeout' }));
    await until(() => sink.calls.length === 2, 'a1 retried');
    expect(sink.calls[1]).toBe(first);
    expect(sink.outstandingIds()).toEqual(['a1']);
    // The error's bounded code is the metric label; without one, its class.
    expect(retries).toEqual(['timeout']);
    sink.fail(new RetriableError('something else'));
    await until(() => sink.calls.length === 3, 'a1 retried again');
    expect(retries).toEqual(['timeout', 'RetriableError']);
    sink.succeed();
    await until(() => sink.outstandingIds().includes('a2'), 'a2 published');
    sink.succeed();
    await until(() => acknowledged.length === 1, 'commit acknowledged');
    expect(acknowledged).toEqual([1]);
  });

  it('waits the backoff delay before retrying, and close() cancels pending retry timers', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { sink, output, pipeline } = setup({ retry: { initialDelayMs: 1000, maxDelayMs: 1000 } });
    await output.push(change('a1'));
    await until(() => sink.outstanding.length === 1, 'a1 published');
    sink.fail(new RetriableError('no responders'));
    await until(() => vi.getTimerCount() === 1, 'a retry timer');
    expect(sink.calls).toHaveLength(1);
    pipeline.close();
    expect(vi.getTimerCount()).toBe(0);
    await expect(output.push(change('a2'))).rejects.toBeInstanceOf(PipelineStoppedError);
  });

  it('treats exhausted attempts as permanent', async () => {
    const { sink, output, fatal } = tracked(
      setup({ retry: { initialDelayMs: 0, maxDelayMs: 0, maxAttempts: 2 } }),
    );
    await output.push(change('a1'));
    await until(() => sink.outstanding.length === 1, 'a1 published');
    sink.fail(new RetriableError('connection reset'));
    await until(() => sink.calls.length === 2, 'a1 retried');
    sink.fail(new RetriableError('connection reset'));
    await until(() => fatal.length === 1, 'onFatal');
    expect(fatal[0]).toBeInstanceOf(PublishFailedError);
    expect(fatal[0]?.message).toMatch(/still failed after 2 attempts/);
  });
});

describe('permanent failures', () => {
  it('calls onFatal once, stops publishing, and never acknowledges the failed event’s transaction or later ones', async () => {
    const errors: string[] = [];
    const metrics = { ...noopMetrics, publishError: (reason: string) => errors.push(reason) };
    const { sink, output, fatal, acknowledged, pipeline } = tracked(setup({ metrics }));
    await output.push(change('ok', { key: { id: 1 } }));
    output.commit(1);
    await output.push(change('poison', { key: { id: 2 } }));
    await output.push(change('also-poison', { key: { id: 3 } }));
    output.commit(2);
    await output.push(change('later', { key: { id: 4 } }));
    output.commit(3);
    await output.push(change('same-key-as-poison', { key: { id: 2 } }));
    output.commit(4);
    await until(() => sink.outstanding.length === 4, 'four keys in flight');
    const drained = pipeline.drain().then(
      () => 'drained',
      (err: unknown) => err,
    );

    sink.succeed(sink.outstanding.find((c) => c.event.id === 'ok'));
    sink.fail(
      new PermanentError('message too large'),
      sink.outstanding.find((c) => c.event.id === 'poison'),
    );
    sink.fail(
      new PermanentError('message too large'),
      sink.outstanding.find((c) => c.event.id === 'also-poison'),
    );
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'later'));
    await until(() => fatal.length === 1 && acknowledged.length === 1, 'the fatal error and the first ack');
    expect(await drained).toBe(fatal[0]);
    for (let i = 0; i < 5; i++) await turn();

    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toBeInstanceOf(PublishFailedError);
    expect((fatal[0] as PublishFailedError).eventId).toBe('poison');
    expect(errors).toEqual(['PermanentError']);
    expect(acknowledged).toEqual([1]);
    expect(sink.calls.map((e) => e.id)).not.toContain('same-key-as-poison');
    await expect(output.push(change('after'))).rejects.toBeInstanceOf(PipelineStoppedError);
    await expect(pipeline.drain()).rejects.toBe(fatal[0]);
  });

  it('continues past an event the dead-letter hook set aside, keeping its key in order', async () => {
    const deadLettered: string[] = [];
    const { sink, output, fatal, acknowledged } = tracked(
      setup({
        onPermanentFailure: async (event) => {
          deadLettered.push(event.id);
          return 'dead-lettered';
        },
      }),
    );
    await output.push(change('poison', { key: { id: 1 } }));
    await output.push(change('next', { key: { id: 1 } }));
    output.commit(1);
    await until(() => sink.outstanding.length === 1, 'poison published');
    sink.fail(new PermanentError('bad subject'));
    await until(() => sink.outstandingIds().includes('next'), 'next published');
    sink.succeed();
    await until(() => acknowledged.length === 1, 'acknowledged');
    expect(deadLettered).toEqual(['poison']);
    expect(fatal).toEqual([]);
  });

  it('stops when the dead-letter hook answers fatal or fails', async () => {
    const answersFatal = tracked(setup({ onPermanentFailure: async () => 'fatal' }));
    await answersFatal.output.push(change('poison'));
    await until(() => answersFatal.sink.outstanding.length === 1, 'published');
    answersFatal.sink.fail(new PermanentError('bad'));
    await until(() => answersFatal.fatal.length === 1, 'onFatal');
    expect(answersFatal.fatal[0]).toBeInstanceOf(PublishFailedError);

    const hookFails = tracked(
      setup({
        onPermanentFailure: async () => {
          throw new Error('dead-letter table missing');
        },
      }),
    );
    await hookFails.output.push(change('poison'));
    await until(() => hookFails.sink.outstanding.length === 1, 'published');
    hookFails.sink.fail(new PermanentError('bad'));
    await until(() => hookFails.fatal.length === 1, 'onFatal');
    expect(hookFails.fatal[0]).toBeInstanceOf(DeadLetterFailedError);
  });

  it('treats an error that is not a SluiceError as permanent', async () => {
    const { sink, output, fatal } = tracked(setup());
    await output.push(change('a1'));
    await until(() => sink.outstanding.length === 1, 'published');
    sink.fail(new TypeError('cannot read properties of undefined'));
    await until(() => fatal.length === 1, 'onFatal');
    expect((fatal[0] as PublishFailedError).cause).toBeInstanceOf(TypeError);
  });
});

describe('truncate', () => {
  it('in key ordering, waits for every earlier event of its table to be stored and holds back later ones', async () => {
    const { sink, output } = tracked(setup({ ordering: 'key' }));
    await output.push(change('r1', { key: { id: 1 } }));
    await output.push(change('r2', { key: { id: 2 } }));
    await output.push(change('trunc', { op: 'truncate' }));
    await output.push(change('r3', { key: { id: 3 } }));
    await output.push(change('c1', { table: 'customers', key: { id: 1 } }));
    await until(() => sink.outstanding.length === 3, 'rows of both tables in flight');
    expect(sink.outstandingIds()).toEqual(['r1', 'r2', 'c1']);
    sink.succeed();
    sink.succeed();
    await until(() => sink.outstandingIds().includes('trunc'), 'truncate published');
    expect(sink.outstandingIds()).toEqual(['c1', 'trunc']);
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'trunc'));
    await until(() => sink.outstandingIds().includes('r3'), 'r3 published after the truncate');
  });
});

describe('key changes', () => {
  it('starts an update that moves a row to another key only after earlier events of the old key are stored', async () => {
    for (const ordering of ['commit', 'key'] as const) {
      const { sink, output } = tracked(setup({ ordering }));
      await output.push(change('old', { op: 'update', key: { id: 1 } }));
      await output.push({ ...change('moved', { op: 'update', key: { id: 2 } }), before: { id: 1 } });
      await until(() => sink.outstanding.length === 1, 'the first update in flight');
      await turn();
      expect(sink.outstandingIds()).toEqual(['old']);
      sink.succeed();
      await until(() => sink.outstandingIds().includes('moved'), 'the key change published');
    }
  });
});

describe('acknowledgement', () => {
  it('acknowledges exactly the cursors the source committed, coalesced to the newest per turn', async () => {
    const { sink, output, acknowledged, pipeline } = tracked(setup());
    for (let i = 1; i <= 10; i++) {
      await output.push(change(`e${i}`, { key: { id: i } }));
      output.commit(i * 100);
    }
    await until(() => sink.outstanding.length === 10, 'all published');
    while (sink.outstanding.length > 0) sink.succeed();
    await until(() => acknowledged.length > 0, 'an acknowledgement');
    await turn();
    expect(acknowledged).toEqual([1000]);
    expect(pipeline.stats()).toEqual({ inFlightEvents: 0, inFlightBytes: 0, acknowledged: 1000 });
  });

  it('advances on empty commits once everything before them is acknowledged', async () => {
    const { sink, output, acknowledged } = tracked(setup());
    output.commit(1);
    await until(() => acknowledged.length === 1, 'idle advance');
    await output.push(change('e1'));
    output.commit(2);
    output.commit(3);
    await turn();
    expect(acknowledged).toEqual([1]);
    sink.succeed();
    await until(() => acknowledged.length === 2, 'second acknowledgement');
    expect(acknowledged).toEqual([1, 3]);
  });

  it('never moves backwards when a reconnecting source replays and re-commits old cursors', async () => {
    const { sink, output, acknowledged } = tracked(setup());
    await output.push(change('e1', { key: { id: 1 } }));
    output.commit(10);
    await output.push(change('e2', { key: { id: 2 } }));
    output.commit(20);
    await until(() => sink.outstanding.length === 2, 'published');
    sink.succeed();
    sink.succeed();
    await until(() => acknowledged.length === 1, 'acknowledged');
    // Reconnect: the source resumes from an older position and sends the same changes again.
    await output.push(change('e1', { key: { id: 1 } }));
    output.commit(10);
    await output.push(change('e2', { key: { id: 2 } }));
    output.commit(20);
    await output.push(change('e3', { key: { id: 3 } }));
    output.commit(30);
    await until(() => sink.outstanding.length === 3, 'replay published');
    while (sink.outstanding.length > 0) sink.succeed();
    await until(() => acknowledged.length === 2, 'second acknowledgement');
    expect(acknowledged).toEqual([20, 30]);
    expect(sink.stored.map((e) => e.id)).toEqual(['e1', 'e2', 'e3']);
  });
});

describe('drain', () => {
  it('resolves once everything pushed is stored and acknowledged', async () => {
    const { sink, output, acknowledged, pipeline } = tracked(setup());
    await pipeline.drain();
    await output.push(change('e1'));
    output.commit(1);
    const drained = pipeline.drain();
    expect(await settled(drained)).toBe(false);
    sink.succeed();
    await drained;
    expect(acknowledged).toEqual([1]);
  });

  it('rejects when the pipeline is closed first', async () => {
    const { output, pipeline } = setup();
    await output.push(change('e1'));
    const drained = pipeline.drain();
    pipeline.close();
    await expect(drained).rejects.toBeInstanceOf(PipelineStoppedError);
  });
});

describe('metrics', () => {
  it('reports received, published, lag and in-flight with bounded labels', async () => {
    const received: EventLabels[] = [];
    const published: EventLabels[] = [];
    const lags: number[] = [];
    const inFlight: [number, number][] = [];
    const metrics = {
      ...noopMetrics,
      eventReceived: (l: EventLabels) => received.push(l),
      eventPublished: (l: EventLabels, seconds: number) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        published.push(l);
      },
      endToEndLag: (_l: EventLabels, seconds: number) => lags.push(seconds),
      inFlight: (events: number, bytes: number) => inFlight.push([events, bytes]),
    };
    const { sink, output } = tracked(setup({ metrics, eventBytes: () => 10 }));
    const commitTime = new Date(Date.now() - 5000).toISOString();
    await output.push(change('c1', { op: 'update', commitTime }));
    await output.push(outbox('o1', 'order', '42'));
    await until(() => sink.outstanding.length === 2, 'published');
    expect(received).toEqual([
      { kind: 'change', schema: 'public', table: 'orders', op: 'update' },
      { kind: 'outbox', schema: '', table: 'order', op: 'outbox' },
    ]);
    expect(inFlight.at(-1)).toEqual([2, 20]);
    sink.succeed();
    sink.succeed();
    await until(() => published.length === 2 && inFlight.at(-1)?.[0] === 0, 'published metrics');
    expect(published).toEqual(received);
    expect(lags[0]).toBeGreaterThanOrEqual(5);
    expect(inFlight.at(-1)).toEqual([0, 0]);
  });
});

describe('options', () => {
  it('rejects invalid settings up front, naming the setting', () => {
    const base = { sink: new ControlledSink(), source: { acknowledge() {} }, onFatal() {} };
    expect(() => createPipeline({ ...base, maxInFlightEvents: 0 })).toThrow(ConfigError);
    expect(() => createPipeline({ ...base, maxInFlightEvents: 0 })).toThrow(
      'maxInFlightEvents: Expected an integer from 1 and up, got `0` (number)',
    );
    expect(() => createPipeline({ ...base, retry: { maxAttempts: 0.5 } })).toThrow(/retry\.maxAttempts/);
    expect(() => createPipeline({ ...base, retry: { initialDelayMs: 500, maxDelayMs: 100 } })).toThrow(
      /retry\.maxDelayMs/,
    );
  });
});

describe('dead letters and parked keys', () => {
  it('asks mayBeParked only while anyParked says some key is parked', async () => {
    const parkedKeys = new Set<string>();
    const asked: string[] = [];
    const parked: string[] = [];
    const { sink, output } = tracked(
      setup({
        parking: {
          anyParked: () => parkedKeys.size > 0,
          mayBeParked: (key) => {
            asked.push(key);
            return parkedKeys.has(key);
          },
          park: async (event) => {
            parked.push(event.id);
            return 'parked';
          },
        },
      }),
    );
    await output.push(change('a1', { key: { id: 'a' } }));
    await until(() => sink.outstanding.length === 1, 'a1 published');
    expect(asked).toEqual([]);
    parkedKeys.add('r\u0000public\u0000orders\u0000{"id":"a"}');
    await output.push(change('b1', { key: { id: 'b' } }));
    await output.push(change('a2', { key: { id: 'a' } }));
    // a2 waits for a1 (its key) in commit ordering.
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'a1'));
    await until(() => parked.length === 1, 'a2 parked');
    expect(parked).toEqual(['a2']);
    expect(asked).toEqual([
      'r\u0000public\u0000orders\u0000{"id":"b"}',
      'r\u0000public\u0000orders\u0000{"id":"a"}',
    ]);
  });

  it('acknowledges nothing at or past a dead-lettered event until the dead letter is committed', async () => {
    let commitDeadLetter: (() => void) | undefined;
    const info: { key: string; firstSeen: Date }[] = [];
    const { sink, output, acknowledged, fatal } = tracked(
      setup({
        onPermanentFailure: (_event, _err, i) => {
          info.push(i);
          return new Promise((resolve) => {
            commitDeadLetter = () => resolve('dead-lettered');
          });
        },
      }),
    );
    await output.push(change('ok', { key: { id: 1 } }));
    output.commit(1);
    await output.push(change('poison', { key: { id: 2 } }));
    output.commit(2);
    await output.push(change('later', { key: { id: 3 } }));
    output.commit(3);
    await until(() => sink.outstanding.length === 3, 'all three published');
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'ok'));
    sink.fail(
      new PermanentError('too large', { code: 'too_large' }),
      sink.outstanding.find((c) => c.event.id === 'poison'),
    );
    sink.succeed(sink.outstanding.find((c) => c.event.id === 'later'));
    await until(() => commitDeadLetter !== undefined, 'the dead-letter hook');
    for (let i = 0; i < 5; i++) await turn();
    expect(acknowledged).toEqual([1]);
    expect(info[0]?.key).toMatch(/{"id":2}$/);
    expect(info[0]?.firstSeen).toBeInstanceOf(Date);
    commitDeadLetter?.();
    await until(() => acknowledged.at(-1) === 3, 'everything acknowledged once the dead letter is committed');
    expect(fatal).toEqual([]);
  });

  it('retries an unclassified failure maxUnclassifiedAttempts times, then hands it to the dead-letter hook; a known transient one keeps retrying', async () => {
    const hooked: { id: string; attempts: number }[] = [];
    const { sink, output } = tracked(
      setup({
        retry: { initialDelayMs: 0, maxDelayMs: 0, maxUnclassifiedAttempts: 3 },
        onPermanentFailure: async (event, err) => {
          hooked.push({ id: event.id, attempts: err.attempts });
          return 'dead-lettered';
        },
      }),
    );
    await output.push(change('odd', { key: { id: 1 } }));
    await output.push(change('slow', { key: { id: 2 } }));
    for (let i = 0; i < 3; i++) {
      await until(() => sink.outstandingIds().includes('odd'), 'odd published');
      sink.fail(
        new RetriableError('something new', { code: 'unknown' }),
        sink.outstanding.find((c) => c.event.id === 'odd'),
      );
    }
    for (let i = 0; i < 10; i++) {
      await until(() => sink.outstandingIds().includes('slow'), 'slow published');
      sink.fail(
        new RetriableError('no PubAck', { code: 'timeout' }),
        sink.outstanding.find((c) => c.event.id === 'slow'),
      );
    }
    await until(() => hooked.length === 1, 'odd dead-lettered');
    expect(hooked).toEqual([{ id: 'odd', attempts: 3 }]);
    await until(() => sink.outstandingIds().includes('slow'), 'slow still retried');
  });

  it('parks later events of a parked key instead of publishing them, publishes a released key, and lets other keys flow', async () => {
    const parkedKeys = new Set([
      'r\u0000public\u0000orders\u0000{"id":1}',
      'r\u0000public\u0000orders\u0000{"id":2}',
    ]);
    const parked: string[] = [];
    let releaseLater: ((outcome: 'parked') => void) | undefined;
    const { sink, output, acknowledged } = tracked(
      setup({
        parking: {
          mayBeParked: (key) => parkedKeys.has(key),
          park: async (event, key) => {
            if (key.endsWith('{"id":2}')) return 'released';
            if (event.id === 'p2') return new Promise((resolve) => (releaseLater = resolve));
            parked.push(event.id);
            return 'parked';
          },
        },
      }),
    );
    await output.push(change('p1', { key: { id: 1 } }));
    await output.push(change('free', { key: { id: 2 } }));
    await output.push(change('other', { key: { id: 3 } }));
    await output.push(change('p2', { key: { id: 1 } }));
    output.commit(1);
    await until(() => sink.outstanding.length === 2, 'released and other keys published');
    expect(sink.outstandingIds().sort()).toEqual(['free', 'other']);
    sink.succeed();
    sink.succeed();
    await until(() => releaseLater !== undefined, 'p2 parking');
    for (let i = 0; i < 3; i++) await turn();
    expect(acknowledged).toEqual([]);
    releaseLater?.('parked');
    await until(() => acknowledged.length === 1, 'the transaction acknowledged once p2 is parked');
    expect(parked).toEqual(['p1']);
    expect(sink.calls.map((e) => e.id).sort()).toEqual(['free', 'other']);
  });

  it('hands an outbox row marked invalid by its source straight to the dead-letter hook, never to the sink', async () => {
    const hooked: string[] = [];
    const { sink, output, acknowledged } = tracked(
      setup({
        onPermanentFailure: async (event, err) => {
          hooked.push(`${event.id}: ${(err.cause as PermanentError).code}`);
          return 'dead-lettered';
        },
      }),
    );
    await output.push({
      ...outbox('bad', 'order', '1'),
      invalid: { code: 'bad_row', message: 'payload is not JSON' },
    });
    await output.push(outbox('good', 'order', '2'));
    output.commit(1);
    await until(() => sink.outstanding.length === 1, 'good published');
    sink.succeed();
    await until(() => acknowledged.length === 1, 'acknowledged');
    expect(hooked).toEqual(['bad: bad_row']);
    expect(sink.calls.map((e) => e.id)).toEqual(['good']);
  });
});
