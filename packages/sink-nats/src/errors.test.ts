import { JetStreamApiError } from '@nats-io/jetstream';
import {
  ClosedConnectionError,
  InvalidArgumentError,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from '@nats-io/transport-node';
import { PermanentError, RetriableError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { classifyPublishError, JsErrCode, type PublishContext, sendsAgain } from './errors.js';

const ctx: PublishContext = {
  subject: 'sluice.cdc.public.orders.insert',
  stream: 'SLUICE',
  eventId: '0/20-1',
  ackTimeoutMs: 5000,
  size: () => 1_048_700,
  maxPayload: 1_048_576,
};

function apiError(err_code: number, code: number, description: string): JetStreamApiError {
  return new JetStreamApiError({ err_code, code, description });
}

describe('classifyPublishError', () => {
  it('treats a PubAck timeout as retriable and names the timeout and the event', () => {
    const err = classifyPublishError(new TimeoutError(), ctx);
    expect(err).toBeInstanceOf(RetriableError);
    expect(err.message).toMatch(/event 0\/20-1 to sluice\.cdc\.public\.orders\.insert \(stream SLUICE\)/);
    expect(err.message).toMatch(/no PubAck within 5000 ms/);
    expect(err.cause).toBeInstanceOf(TimeoutError);
    expect(err.code).toBe('timeout');
  });

  it('treats no responders (as nats.js wraps it for js.publish) as retriable, pointing at the stream', () => {
    const wrapped = new Error('jetstream is not enabled', {
      cause: new RequestError('503', { cause: new NoRespondersError(ctx.subject) }),
    });
    wrapped.name = 'JetStreamNotEnabled';
    const err = classifyPublishError(wrapped, ctx);
    expect(err).toBeInstanceOf(RetriableError);
    expect(err.message).toMatch(/503 no responders/);
    expect(err.hint).toMatch(/stream SLUICE exists and captures/);
  });

  it('treats a closed connection as retriable', () => {
    expect(classifyPublishError(new ClosedConnectionError(), ctx)).toBeInstanceOf(RetriableError);
  });

  it('treats a message over max_payload as permanent, with both sizes and the fix', () => {
    const err = classifyPublishError(
      InvalidArgumentError.format('payload', 'max_payload size exceeded'),
      ctx,
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/1048700 bytes .* max_payload of 1048576 bytes/);
    expect(err.hint).toMatch(/raise max_payload/);
  });

  it('treats "maximum messages exceeded" on a discard-new stream as permanent, naming the limit', () => {
    const err = classifyPublishError(
      apiError(JsErrCode.StreamStoreFailed, 503, 'maximum messages exceeded'),
      ctx,
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/maximum messages exceeded \(err_code 10077\)/);
    expect(err.hint).toMatch(/max_msgs/);
  });

  it('treats a message over the stream max_msg_size and a wrong stream as permanent', () => {
    const big = classifyPublishError(
      apiError(JsErrCode.StreamMessageExceedsMaximum, 400, 'message size exceeds maximum allowed'),
      ctx,
    );
    expect(big).toBeInstanceOf(PermanentError);
    expect(big.hint).toMatch(/max_msg_size/);
    const wrong = classifyPublishError(
      apiError(JsErrCode.StreamNotMatch, 400, 'expected stream does not match'),
      ctx,
    );
    expect(wrong).toBeInstanceOf(PermanentError);
    expect(wrong.message).toMatch(/another stream captures/);
  });

  it('treats other JetStream 503s (temporarily unavailable) as retriable', () => {
    const err = classifyPublishError(apiError(10008, 503, 'JetStream system temporarily unavailable'), ctx);
    expect(err).toBeInstanceOf(RetriableError);
  });

  it('retries an unknown failure rather than dead-lettering a deliverable event', () => {
    expect(classifyPublishError(new Error('socket hang up'), ctx)).toBeInstanceOf(RetriableError);
  });
});

describe('sendsAgain', () => {
  const unknown = new RetriableError('unreadable PubAck', { code: 'unknown' });
  const timeout = new RetriableError('no PubAck', { code: 'timeout' });

  it('sends an unclassified failure again until it has been sent maxUnclassifiedAttempts times', () => {
    expect([1, 2, 3].map((attempts) => sendsAgain(unknown, attempts, 3))).toEqual([true, true, false]);
  });

  it('always sends a recognised transient failure again, and never a permanent one', () => {
    expect(sendsAgain(timeout, 1_000, 3)).toBe(true);
    expect(sendsAgain(new PermanentError('too large', { code: 'too_large' }), 1, 3)).toBe(false);
  });
});
