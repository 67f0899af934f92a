import { PermanentError } from '@sluice/core';

/**
 * What a publish asks JetStream to check before storing: the stream's last message id
 * (`Nats-Expected-Last-Msg-Id`) or last sequence (`Nats-Expected-Last-Sequence`).
 */
export type Expectation = { readonly lastMsgId: string } | { readonly lastSeq: number };

/** How JetStream answered one publish (the sink sorts PubAcks and errors into these). */
export type Outcome =
  /** Stored now at `seq`, or already stored (`duplicate`: dropped by Nats-Msg-Id). */
  | { readonly kind: 'stored'; readonly seq: number; readonly duplicate: boolean }
  /** Rejected, nothing stored: the stream's last message id is `lastId` (error 10070). */
  | { readonly kind: 'wrong-last-id'; readonly lastId: string }
  /** Rejected, nothing stored: the stream's last sequence is not the expected one (error 10071). */
  | { readonly kind: 'wrong-last-seq'; readonly lastSeq: number }
  /** No answer or a transient error (timeout, disconnected, no responders): stored or not, unknown. */
  | { readonly kind: 'retry'; readonly reason: string; readonly error: Error }
  /** This message can never be stored as it is (too large, stream full): nothing stored. */
  | { readonly kind: 'refused'; readonly error: Error };

/** The stream's last message, as read from JetStream. */
export interface StreamLast {
  /** 0 when the stream is empty. */
  readonly seq: number;
  /** Its Nats-Msg-Id; undefined when it has none. */
  readonly id: string | undefined;
  /** For error messages: where it is. */
  readonly subject?: string | undefined;
  /** The stream holds no message (`seq` is where it would continue: messages expired or purged). */
  readonly empty?: boolean;
  /**
   * Not the chain's, but a message the chain may continue after: one of this relay's own events
   * published late by someone else (`sluice dlq replay`), at a position before the chain's head.
   */
  readonly adoptable?: boolean;
}

export interface ChainLink {
  /** Nats-Msg-Id: unique per event, the same on every resend. */
  readonly id: string;
  /** The event is stored: resolve its publish. */
  readonly resolve: () => void;
  /** Rejects its publish (a refusal, or the chain stopped for good). */
  readonly reject: (err: Error) => void;
}

export interface ChainIo<L extends ChainLink> {
  /** Publishes now (synchronously, in call order); calls `done` once with the outcome. */
  send(link: L, expect: Expectation, done: (outcome: Outcome) => void): void;
  /** Reads the stream's last message (`head`: the first unconfirmed one). Rejects when it cannot (retried after a delay). */
  locate(head: L | undefined): Promise<StreamLast>;
  /** setTimeout; injected so tests control time. */
  schedule(fn: () => void, delayMs: number): () => void;
}

export interface ChainEvents {
  /** A round of resends begins: `resent` messages from the first unconfirmed one, because of `reason`. */
  resend?(reason: string, resent: number, delayMs: number, cause: Error | undefined): void;
  /** The stream's last message is one the chain had a PubAck for and has since been lost. */
  lostAcknowledged?(last: StreamLast, lost: number): void;
  /** The stream's last message is not the chain's but adoptable (see StreamLast.adoptable). */
  adopted?(last: StreamLast): void;
  /** The stream was found empty where the chain expected its own last message (deleted or purged). */
  restartedEmpty?(): void;
}

export interface ChainOptions<L extends ChainLink> {
  io: ChainIo<L>;
  events?: ChainEvents;
  /** Delay before the second resend round in a row; doubles per round without progress. Default 100. */
  initialDelayMs?: number;
  /** Ceiling of that delay. Default 5000. */
  maxDelayMs?: number;
}

/** Commit ordering needs one writer; this names the other one and what to do. */
export class AnotherWriterError extends PermanentError {
  constructor(stream: string, last: StreamLast, expected: string) {
    super(
      `stream ${stream} has a message the relay did not write: its last message is seq ${last.seq}` +
        `${last.id === undefined ? ' without a Nats-Msg-Id' : ` with Nats-Msg-Id ${JSON.stringify(last.id)}`}` +
        `${last.subject === undefined ? '' : ` on ${last.subject}`}, where the relay expected ${expected}`,
      {
        code: 'another_writer',
        hint:
          'SLUICE_ORDERING=commit needs the relay to be the only writer of its stream: give each relay (and any ' +
          'other publisher) its own stream and subjects, or set SLUICE_ORDERING=key for per-key order only',
      },
    );
  }
}

type State = 'locating' | 'running' | 'waiting' | 'halted' | 'failed' | 'closed';

interface Entry<L> {
  readonly link: L;
  /** The round it was last sent in; 0 while unsent. */
  round: number;
  /** Refused: waits for setAside (dead-lettered) or the end. */
  refused: boolean;
}

/**
 * Publishes pipelined, in call order, and keeps the stream in that order through any fault.
 *
 * Each message expects the previous one as the stream's last (`Nats-Expected-Last-Msg-Id`), so
 * JetStream stores it only right after its predecessor: whatever is lost or retried, the stream
 * holds a prefix of the chain, never a gap followed by later messages. A message that is already
 * stored is answered as a duplicate (JetStream checks Nats-Msg-Id before the expectation), so
 * resending is always safe. Any failure of the current round (a rejection, a timeout) starts a
 * new round that resends everything unconfirmed, in order; answers to older rounds still confirm
 * (a PubAck is the truth) but never start another round, so a stall costs one resend per message.
 *
 * The first message of a round expects the chain's anchor: the last message known stored. When
 * the stream's answer does not fit what the chain knows (nats-server restarted and forgot its last
 * id, another writer, a store that lost acknowledged messages), the chain reads the stream's last
 * message and continues from it with `Nats-Expected-Last-Sequence`.
 */
export class PublishChain<L extends ChainLink> {
  readonly #io: ChainIo<L>;
  readonly #events: ChainEvents;
  readonly #stream: string;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  /** Unconfirmed messages in call order. */
  #entries: Entry<L>[] = [];
  #head = 0;
  #anchor: Expectation | undefined;
  /** Id of the anchor message when known (for recognising it in a rejection). */
  #anchorId: string | undefined;
  #round = 1;
  #state: State = 'locating';
  /** Rounds started without a message confirmed since: sets the delay. */
  #fruitless = 0;
  #cancelTimer: (() => void) | undefined;
  #failure: Error | undefined;
  /** The highest stream sequence a PubAck reported: a stream whose last is below it lost messages. */
  #confirmedSeq = 0;

  constructor(stream: string, options: ChainOptions<L>) {
    this.#stream = stream;
    this.#io = options.io;
    this.#events = options.events ?? {};
    this.#initialDelayMs = options.initialDelayMs ?? 100;
    this.#maxDelayMs = Math.max(options.maxDelayMs ?? 5000, this.#initialDelayMs);
  }

  /** Unconfirmed messages (sent or waiting). */
  get pending(): number {
    return this.#entries.length - this.#head;
  }

  get state(): State {
    return this.#state;
  }

  /** Where the chain starts: the stream's last message, read by the caller at start. */
  begin(last: StreamLast): void {
    if (this.#state !== 'locating') return;
    this.#anchor = { lastSeq: last.seq };
    this.#anchorId = last.id;
    this.#confirmedSeq = last.seq;
    this.#resume();
  }

  /**
   * Appends a message that will not be sent (the caller dead-letters it without publishing): it
   * holds every later message back like a refused one, until `setAside`.
   */
  hold(link: L): void {
    if (this.#state === 'failed' || this.#state === 'closed') return;
    this.#entries.push({ link, round: 0, refused: true });
    if (this.#state === 'running' || this.#state === 'waiting') {
      this.#state = 'halted';
      this.#cancelTimer?.();
      this.#cancelTimer = undefined;
    }
  }

  /** Appends a message; sent at once unless a resend round is pending. */
  add(link: L): void {
    if (this.#state === 'failed' || this.#state === 'closed') {
      link.reject(this.#failure ?? new PermanentError('the publish chain is closed', { code: 'closed' }));
      return;
    }
    const entry: Entry<L> = { link, round: 0, refused: false };
    this.#entries.push(entry);
    if (this.#state === 'running') this.#send(this.#entries.length - 1);
  }

  /**
   * A refused message was set aside (dead-lettered): later messages may be stored without it.
   * Until then the chain holds everything after it, so commit order holds if the relay stops.
   */
  setAside(id: string, withdraw?: (link: L) => boolean, withdrawn?: (link: L) => Error): void {
    const i = this.#indexOf(id);
    if (i < 0) return;
    const entry = this.#entries[i] as Entry<L>;
    if (!entry.refused) return;
    this.#entries.splice(i, 1);
    // Nothing after a refused message can have been stored: every later one may still be taken back.
    if (withdraw !== undefined && withdrawn !== undefined) {
      for (let j = i; j < this.#entries.length; ) {
        const later = this.#entries[j] as Entry<L>;
        if (!later.refused && withdraw(later.link)) {
          this.#entries.splice(j, 1);
          later.link.reject(withdrawn(later.link));
        } else {
          j++;
        }
      }
    }
    if (this.#state === 'halted' && !this.#hasRefused()) {
      this.#state = 'running';
      this.#startRound('set aside', 0, undefined);
    }
  }

  /** Sends from the first unconfirmed message up to the first refused one, which halts the rest. */
  #resume(): void {
    this.#state = 'running';
    this.#sendFrom(this.#head);
    if (this.#state === 'running' && this.#hasRefused()) this.#state = 'halted';
  }

  /** Stops for good: every unconfirmed publish is rejected with `err`. */
  close(err: Error): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#state = 'closed';
    this.#failure = err;
    this.#cancelTimer?.();
    this.#rejectAll(err);
  }

  // ---------------------------------------------------------------------------------------------

  #indexOf(id: string): number {
    for (let i = this.#head; i < this.#entries.length; i++) {
      if ((this.#entries[i] as Entry<L>).link.id === id) return i;
    }
    return -1;
  }

  #hasRefused(): boolean {
    for (let i = this.#head; i < this.#entries.length; i++)
      if ((this.#entries[i] as Entry<L>).refused) return true;
    return false;
  }

  #expectationFor(i: number): Expectation | undefined {
    if (i === this.#head) return this.#anchor;
    return { lastMsgId: (this.#entries[i - 1] as Entry<L>).link.id };
  }

  #sendFrom(from: number): void {
    for (let i = from; i < this.#entries.length && this.#state === 'running'; i++) {
      const entry = this.#entries[i] as Entry<L>;
      if (entry.refused) return;
      this.#send(i);
    }
  }

  #send(i: number): void {
    const entry = this.#entries[i] as Entry<L>;
    const expect = this.#expectationFor(i);
    if (expect === undefined) return;
    const round = this.#round;
    entry.round = round;
    this.#io.send(entry.link, expect, (outcome) => this.#answer(entry, round, outcome));
  }

  #answer(entry: Entry<L>, round: number, outcome: Outcome): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    switch (outcome.kind) {
      case 'stored':
        if (outcome.seq > this.#confirmedSeq) this.#confirmedSeq = outcome.seq;
        this.#confirmThrough(entry.link.id);
        return;
      case 'refused': {
        const at = this.#position(entry);
        if (at < 0) return; // confirmed meanwhile by a later answer
        // One refusal at a time, in order (nats.js refuses an oversize message before the server
        // sees it, so several of one round can be refused): a later one is sent again, and so
        // refused again, once the earlier is set aside.
        for (let i = this.#head; i < at; i++) if ((this.#entries[i] as Entry<L>).refused) return;
        entry.refused = true;
        this.#state = this.#state === 'running' || this.#state === 'waiting' ? 'halted' : this.#state;
        this.#cancelTimer?.();
        this.#cancelTimer = undefined;
        entry.link.reject(outcome.error);
        return;
      }
      case 'wrong-last-id': {
        if (round !== this.#round || this.#state !== 'running') {
          // Stale, but still news: a rejection names the stream's last id.
          if (this.#indexOf(outcome.lastId) >= 0) this.#confirmThrough(outcome.lastId);
          return;
        }
        if (this.#indexOf(outcome.lastId) >= 0) {
          this.#confirmThrough(outcome.lastId);
          this.#startRound('out of order', undefined, undefined);
        } else if (outcome.lastId !== '' && outcome.lastId === this.#anchorId) {
          this.#startRound('out of order', undefined, undefined);
        } else {
          this.#relocate('unexpected last message');
        }
        return;
      }
      case 'wrong-last-seq':
        if (round !== this.#round || this.#state !== 'running') return;
        this.#relocate('unexpected last sequence');
        return;
      case 'retry':
        if (round !== this.#round || this.#state !== 'running') return;
        if (this.#position(entry) < 0) return;
        this.#startRound(outcome.reason, undefined, outcome.error);
        return;
    }
  }

  #position(entry: Entry<L>): number {
    for (let i = this.#head; i < this.#entries.length; i++) if (this.#entries[i] === entry) return i;
    return -1;
  }

  /** `id` is stored: so is everything before it in the chain (each waited for its predecessor). */
  #confirmThrough(id: string): void {
    const end = this.#indexOf(id);
    if (end < 0) return;
    for (let i = this.#head; i <= end; i++) {
      const entry = this.#entries[i] as Entry<L>;
      this.#entries[i] = undefined as unknown as Entry<L>;
      // A refused message cannot be before a stored one; if JetStream stored it after all, fine.
      if (!entry.refused) entry.link.resolve();
    }
    this.#head = end + 1;
    this.#anchor = { lastMsgId: id };
    this.#anchorId = id;
    this.#fruitless = 0;
    // Compact now and then so the array does not keep every message ever sent.
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  #delay(): number {
    if (this.#fruitless <= 1) return 0;
    return Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** (this.#fruitless - 2));
  }

  /** Resends everything unconfirmed, in order, after the backoff delay. */
  #startRound(reason: string, delayMs: number | undefined, cause: Error | undefined): void {
    if (this.#state !== 'running') return;
    this.#fruitless++;
    const delay = delayMs ?? this.#delay();
    this.#round++;
    this.#events.resend?.(reason, this.pending, delay, cause);
    const go = () => {
      this.#cancelTimer = undefined;
      if (this.#state !== 'waiting') return;
      this.#resume();
    };
    this.#state = 'waiting';
    if (delay <= 0) {
      go();
      return;
    }
    this.#cancelTimer = this.#io.schedule(go, delay);
  }

  /** The stream's answer does not fit: read its last message and continue from there. */
  #relocate(reason: string): void {
    if (this.#state !== 'running') return;
    this.#state = 'locating';
    this.#round++;
    this.#fruitless++;
    const attempt = () => {
      this.#cancelTimer = undefined;
      if (this.#state !== 'locating') return;
      const head =
        this.#head < this.#entries.length ? (this.#entries[this.#head] as Entry<L>).link : undefined;
      this.#io.locate(head).then(
        (last) => this.#located(last, reason),
        () => {
          if (this.#state !== 'locating') return;
          this.#fruitless++;
          this.#cancelTimer = this.#io.schedule(attempt, Math.max(this.#delay(), this.#initialDelayMs));
        },
      );
    };
    attempt();
  }

  #located(last: StreamLast, reason: string): void {
    if (this.#state !== 'locating') return;
    const id = last.id;
    if (id !== undefined && this.#indexOf(id) >= 0) {
      this.#confirmThrough(id);
    } else if (id !== undefined && id === this.#anchorId) {
      // Nothing of ours after the anchor: nats-server forgot its last id (restart after an idle
      // period longer than the duplicate window), or a round was lost.
    } else if (last.seq === 0 || last.empty === true) {
      this.#events.restartedEmpty?.();
    } else if (last.seq < this.#confirmedSeq) {
      // JetStream had acknowledged messages up to #confirmedSeq; the stream now ends before that.
      this.#events.lostAcknowledged?.(last, this.#confirmedSeq - last.seq);
    } else if (last.adoptable === true) {
      this.#events.adopted?.(last);
    } else {
      const expected = this.#anchorId === undefined ? 'none' : JSON.stringify(this.#anchorId);
      this.#fail(new AnotherWriterError(this.#stream, last, `Nats-Msg-Id ${expected}`));
      return;
    }
    // The sequence works whether or not nats-server remembers the last message's id.
    this.#anchor = { lastSeq: last.seq };
    this.#confirmedSeq = last.seq;
    this.#anchorId = id;
    this.#state = 'running';
    this.#events.resend?.(reason, this.pending, 0, undefined);
    this.#resume();
  }

  #fail(err: Error): void {
    this.#state = 'failed';
    this.#failure = err;
    this.#cancelTimer?.();
    this.#rejectAll(err);
  }

  #rejectAll(err: Error): void {
    const entries = this.#entries;
    const head = this.#head;
    this.#entries = [];
    this.#head = 0;
    for (let i = head; i < entries.length; i++) {
      const entry = entries[i] as Entry<L>;
      if (!entry.refused) entry.link.reject(err);
    }
  }
}
