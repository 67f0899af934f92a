import {
  type Msg,
  type NatsConnection,
  PermissionViolationError,
  TimeoutError,
} from '@nats-io/transport-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PubAckCollector, readPubAck } from './pub-acks.js';

type ReplyCallback = (err: Error | null, msg: Msg) => void;

/** Just enough of a NatsConnection: publishes are recorded, replies are delivered by the test. */
function fakeConnection() {
  const published: { subject: string; reply: string }[] = [];
  let callback: ReplyCallback | undefined;
  const nc = {
    subscribe(_subject: string, opts: { callback: ReplyCallback }) {
      callback = opts.callback;
      return { unsubscribe() {} };
    },
    publish(subject: string, _body: string, opts: { reply: string }) {
      published.push({ subject, reply: opts.reply });
    },
  };
  const reply = (replySubject: string, body: string) => {
    const data = new TextEncoder().encode(body);
    callback?.(null, { subject: replySubject, data, headers: undefined } as unknown as Msg);
  };
  return { nc: nc as unknown as NatsConnection, published, reply };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('PubAckCollector', () => {
  it('resolves on the PubAck and ignores one that arrives after its timeout (the retry is the one answered)', async () => {
    vi.useFakeTimers();
    const { nc, published, reply } = fakeConnection();
    const acks = new PubAckCollector(nc, 1000);
    const first = acks.publish('s.a', '{}', undefined as never);
    const failed = expect(first).rejects.toBeInstanceOf(TimeoutError);
    await vi.advanceTimersByTimeAsync(1300);
    await failed;
    const retry = acks.publish('s.a', '{}', undefined as never);
    // The late PubAck of the first attempt must not settle the retry.
    reply(published[0]?.reply ?? '', '{"stream":"S","seq":1}');
    expect(acks.pending).toBe(1);
    reply(published[1]?.reply ?? '', '{"stream":"S","seq":1,"duplicate":true}');
    await expect(retry).resolves.toMatchObject({ seq: 1, duplicate: true });
    acks.close();
  });

  it('times a publish out after timeoutMs even when the wall clock is set back meanwhile', async () => {
    vi.useFakeTimers();
    const { nc } = fakeConnection();
    const acks = new PubAckCollector(nc, 1000);
    const lost = acks.publish('s.a', '{}', undefined as never);
    const failed = expect(lost).rejects.toBeInstanceOf(TimeoutError);
    // NTP steps the clock back an hour: a lost publish must still fail after its timeout, not an hour later.
    vi.setSystemTime(Date.now() - 3_600_000);
    await vi.advanceTimersByTimeAsync(1300);
    await failed;
    expect(acks.pending).toBe(0);
    acks.close();
  });

  it('rejects the publishes of a subject the server refused with its permission error, and only those', async () => {
    const { nc, published, reply } = fakeConnection();
    const acks = new PubAckCollector(nc, 60_000);
    const refused = acks.publish('s.denied', '{}', undefined as never);
    const allowed = acks.publish('s.allowed', '{}', undefined as never);
    const err = PermissionViolationError.parse('Permissions Violation for Publish to "s.denied"');
    if (err === null) throw new Error('nats.js no longer parses the permission error');
    acks.denied(err);
    await expect(refused).rejects.toBe(err);
    expect(acks.pending).toBe(1);
    reply(published[1]?.reply ?? '', '{"stream":"S","seq":1}');
    await expect(allowed).resolves.toMatchObject({ seq: 1 });
    acks.close();
  });
});

describe('readPubAck', () => {
  const read = (text: string) => readPubAck(new TextEncoder().encode(text));

  it('reads the sequence and the duplicate flag of the PubAcks nats-server sends', () => {
    for (const text of [
      '{"stream":"SL","seq":42}',
      '{"stream":"SL","seq":42,"duplicate":true}',
      '{"stream":"SL","domain":"hub","seq":9007199254740}',
      '{"stream":"seq","seq":1}',
    ]) {
      expect(read(text)).toEqual(
        JSON.parse(text).duplicate
          ? { seq: JSON.parse(text).seq, duplicate: true }
          : { seq: JSON.parse(text).seq },
      );
    }
  });

  it('leaves errors and unexpected shapes to JSON.parse', () => {
    for (const text of [
      '{"error":{"code":400,"err_code":10070,"description":"wrong last msg ID: x"},"stream":"SL","seq":0}',
      '{"stream":"SL","seq":-1}',
      '{"stream":"SL","seq":"1"}',
      '{"stream":"SL"}',
      '{"stream":"SL","seq":12345678901234567}',
      '',
    ]) {
      expect(read(text)).toBeUndefined();
    }
  });
});
