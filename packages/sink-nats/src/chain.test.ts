import { describe, expect, it } from 'vitest';
import { AnotherWriterError, type ChainLink, type Expectation, type Outcome, PublishChain } from './chain.js';

interface Sent {
  id: string;
  expect: Expectation;
  answer: (outcome: Outcome) => void;
}

/**
 * JetStream's publish checks as nats-server applies them (server/stream.go processJetStreamMsg):
 * Nats-Msg-Id dedupe first, then the expected last sequence, then the expected last msg id.
 */
class FakeStream {
  readonly ids: (string | undefined)[] = [];
  lastId = '';
  readonly dedupe = new Set<string>();

  apply(id: string, expect: Expectation): Outcome {
    if (this.dedupe.has(id)) return { kind: 'stored', seq: this.ids.indexOf(id) + 1, duplicate: true };
    if ('lastSeq' in expect && expect.lastSeq !== this.ids.length) {
      return { kind: 'wrong-last-seq', lastSeq: this.ids.length };
    }
    if ('lastMsgId' in expect && expect.lastMsgId !== this.lastId) {
      return { kind: 'wrong-last-id', lastId: this.lastId };
    }
    this.ids.push(id);
    this.dedupe.add(id);
    this.lastId = id;
    return { kind: 'stored', seq: this.ids.length, duplicate: false };
  }

  /** A restart after an idle period longer than the duplicate window: ids and dedupe forgotten. */
  forget(): void {
    this.lastId = '';
    this.dedupe.clear();
  }

  last() {
    const seq = this.ids.length;
    return { seq, id: seq === 0 ? undefined : this.ids[seq - 1] };
  }
}

function harness(stream = new FakeStream()) {
  const wire: Sent[] = [];
  const timers: (() => void)[] = [];
  const settled = new Map<string, 'stored' | Error>();
  const resends: string[] = [];
  const lost: number[] = [];
  const chain = new PublishChain<ChainLink>('S', {
    io: {
      send: (link, expect, answer) => {
        wire.push({ id: link.id, expect, answer });
      },
      locate: () => Promise.resolve(stream.last()),
      schedule: (fn) => {
        timers.push(fn);
        return () => {
          const i = timers.indexOf(fn);
          if (i >= 0) timers.splice(i, 1);
        };
      },
    },
    events: {
      resend: (reason) => resends.push(reason),
      lostAcknowledged: (_last, n) => lost.push(n),
    },
  });
  const flush = () => new Promise((resolve) => setImmediate(resolve));
  return {
    stream,
    chain,
    wire,
    settled,
    resends,
    lost,
    add(...ids: string[]) {
      for (const id of ids) {
        chain.add({
          id,
          resolve: () => settled.set(id, 'stored'),
          reject: (err) => settled.set(id, err),
        });
      }
    },
    /** The server processes the next `n` messages on the wire and answers them. */
    async deliver(n = wire.length) {
      for (const sent of wire.splice(0, n)) sent.answer(stream.apply(sent.id, sent.expect));
      await flush();
    },
    /** The next `n` messages never reach the server; their PubAcks time out. */
    async drop(n = wire.length) {
      for (const sent of wire.splice(0, n))
        sent.answer({ kind: 'retry', reason: 'timeout', error: new Error('t') });
      await flush();
    },
    /** Stored, but the PubAcks are lost (a stalled link). */
    async storeSilently(n = wire.length) {
      for (const sent of wire.splice(0, n)) {
        stream.apply(sent.id, sent.expect);
        sent.answer({ kind: 'retry', reason: 'timeout', error: new Error('t') });
      }
      await flush();
    },
    async fireTimers() {
      for (const fn of timers.splice(0)) fn();
      await flush();
    },
    /** Deliver everything (firing backoff timers) until the wire is quiet. */
    async settle() {
      for (let i = 0; i < 50 && (wire.length > 0 || timers.length > 0); i++) {
        await this.deliver();
        await this.fireTimers();
      }
    },
    flush,
  };
}

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `e${from + i}`);

describe('PublishChain', () => {
  it('pipelines: every message is on the wire before any PubAck, each expecting the one before', async () => {
    const h = harness();
    h.add('a', 'b', 'c');
    expect(h.wire).toHaveLength(0); // not started: the stream's last message is not known yet
    h.chain.begin({ seq: 0, id: undefined });
    expect(h.wire.map((s) => s.expect)).toEqual([{ lastSeq: 0 }, { lastMsgId: 'a' }, { lastMsgId: 'b' }]);
    await h.deliver();
    expect(h.stream.ids).toEqual(['a', 'b', 'c']);
    expect([...h.settled.values()]).toEqual(['stored', 'stored', 'stored']);
  });

  it('a lost message is resent first and nothing after it is stored ahead of it', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add(...ids(6));
    await h.deliver(2);
    await h.drop(1); // e2 lost (nats-server restarted before storing it)
    expect(h.wire.map((s) => s.id)).toEqual(['e3', 'e4', 'e5', 'e2', 'e3', 'e4', 'e5']);
    await h.deliver(3); // the first round's e3..e5 are rejected: each expects its predecessor
    expect(h.stream.ids).toEqual(['e0', 'e1']);
    await h.settle();
    expect(h.stream.ids).toEqual(ids(6));
    expect(h.resends).toEqual(['timeout']); // one round, not one per message
  });

  it('PubAcks lost after storing: the resend is deduplicated, order kept', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add(...ids(5));
    await h.storeSilently(3);
    await h.deliver();
    await h.settle();
    expect(h.stream.ids).toEqual(ids(5));
    expect(h.settled.size).toBe(5);
  });

  it('a stalled server that stores everything late, after the resends were sent, still yields one copy in order', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add(...ids(4));
    const stalled = h.wire.splice(0); // in a socket buffer while the server is paused
    for (const s of stalled) s.answer({ kind: 'retry', reason: 'timeout', error: new Error('t') });
    await h.flush();
    h.add(...ids(2, 4));
    expect(h.wire.map((s) => s.id)).toEqual(ids(6)); // the round resent e0..e3, then e4, e5
    for (const s of stalled) h.stream.apply(s.id, s.expect); // the server wakes up
    await h.settle();
    expect(h.stream.ids).toEqual(ids(6));
  });

  it('continues by sequence when nats-server forgot the last message id (restart after the duplicate window)', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add('a', 'b');
    await h.deliver();
    h.stream.forget();
    h.add('c', 'd');
    await h.settle();
    expect(h.stream.ids).toEqual(['a', 'b', 'c', 'd']);
    expect(h.resends).toContain('unexpected last message');
  });

  it('starts after a stream that already holds messages, by sequence', async () => {
    const stream = new FakeStream();
    stream.apply('old', { lastSeq: 0 });
    const h = harness(stream);
    h.chain.begin(stream.last());
    h.add('x');
    expect(h.wire[0]?.expect).toEqual({ lastSeq: 1 });
    await h.deliver();
    expect(stream.ids).toEqual(['old', 'x']);
  });

  it('another writer stops the chain with an error that says what to do', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add('a');
    await h.deliver();
    h.stream.apply('intruder', { lastMsgId: 'a' });
    h.add('b', 'c');
    await h.settle();
    expect(h.stream.ids).toEqual(['a', 'intruder']);
    const err = h.settled.get('b');
    expect(err).toBeInstanceOf(AnotherWriterError);
    expect((err as Error).message).toMatch(/"intruder".*expected Nats-Msg-Id "a"/);
    expect((err as AnotherWriterError).hint).toMatch(/SLUICE_ORDERING=key/);
    expect(h.settled.get('c')).toBe(err);
  });

  it('a refused message holds the rest until it is set aside, then they follow without it', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add('a', 'big', 'c', 'd');
    await h.deliver(1);
    const big = h.wire.shift() as Sent;
    big.answer({ kind: 'refused', error: new Error('too large') });
    await h.deliver(); // c, d rejected: big is not the last message
    await h.settle();
    expect(h.stream.ids).toEqual(['a']);
    expect((h.settled.get('big') as Error).message).toBe('too large');
    expect(h.settled.has('c')).toBe(false);
    h.chain.setAside('big');
    await h.settle();
    expect(h.stream.ids).toEqual(['a', 'c', 'd']);
  });

  it('set aside with withdraw: later messages of a parked key are handed back unpublished, the rest follow', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add('k1', 'bad', 'k2', 'other');
    await h.deliver(1);
    (h.wire.shift() as Sent).answer({ kind: 'refused', error: new Error('too large') });
    await h.settle();
    h.chain.setAside(
      'bad',
      (link) => link.id === 'k2',
      () => new Error('withdrawn'),
    );
    await h.settle();
    expect(h.stream.ids).toEqual(['k1', 'other']);
    expect((h.settled.get('k2') as Error).message).toBe('withdrawn');
  });

  it('a held message (dead-lettered unsent) holds the rest back until it is set aside', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add('a');
    h.chain.hold({ id: 'invalid', resolve: () => undefined, reject: () => undefined });
    h.add('b');
    await h.settle();
    expect(h.stream.ids).toEqual(['a']);
    h.chain.setAside('invalid');
    await h.settle();
    expect(h.stream.ids).toEqual(['a', 'b']);
  });

  it("adopts a message of this relay's published late by someone else (sluice dlq replay) and goes on after it", async () => {
    const stream = new FakeStream();
    let adoptable = false;
    const h = harness(stream);
    const locate = stream.last.bind(stream);
    stream.last = () => ({ ...locate(), adoptable });
    h.chain.begin({ seq: 0, id: undefined });
    h.add('a');
    await h.deliver();
    stream.apply('replayed-dead-letter', { lastMsgId: 'a' });
    adoptable = true;
    h.add('b');
    await h.settle();
    expect(stream.ids).toEqual(['a', 'replayed-dead-letter', 'b']);
  });

  it('recognises acknowledged messages the stream lost (a store that had not synced them)', async () => {
    const h = harness();
    h.chain.begin({ seq: 0, id: undefined });
    h.add('a', 'b', 'c');
    await h.deliver();
    // The machine crashed: b and c were acknowledged but never reached the disk.
    h.stream.ids.splice(1);
    h.stream.lastId = 'a';
    h.stream.dedupe.delete('b');
    h.stream.dedupe.delete('c');
    h.add('d');
    await h.settle();
    expect(h.lost).toEqual([2]);
    expect(h.stream.ids).toEqual(['a', 'd']);
  });

  it('a random mix of losses, lost PubAcks and late deliveries keeps one copy of each, in order', async () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let run = 0; run < 20; run++) {
      const h = harness();
      h.chain.begin({ seq: 0, id: undefined });
      const total = 40;
      let next = 0;
      for (let step = 0; step < 400 && h.settled.size < total; step++) {
        const r = random();
        if (next < total && r < 0.3) h.add(`m${next++}`);
        else if (r < 0.6) await h.deliver(1 + Math.floor(random() * 3));
        else if (r < 0.7) await h.drop(1);
        else if (r < 0.8) await h.storeSilently(1);
        else if (r < 0.85) h.stream.forget();
        else await h.fireTimers();
      }
      while (next < total) h.add(`m${next++}`);
      await h.settle();
      expect(h.stream.ids).toEqual(Array.from({ length: total }, (_, i) => `m${i}`));
      expect(h.settled.size).toBe(total);
    }
  }, 60_000);
});
