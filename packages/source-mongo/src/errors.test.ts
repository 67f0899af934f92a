import { PermanentError, RetriableError } from '@sluice/core';
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { ChangeStreamHistoryLostError, classifyMongoError, ResumeTokenRejectedError } from './errors.js';

const url = 'mongodb://sluice:***@db:27017';
const server = (code: number, codeName: string, labels: string[] = []) => {
  const err = new MongoServerError({ code, codeName, errmsg: `${codeName} from the server` });
  for (const label of labels) err.addErrorLabel(label);
  return err;
};

describe('classifyMongoError', () => {
  it('stops with the re-snapshot recovery when the oplog rolled past the token (code 286)', () => {
    const err = classifyMongoError(server(286, 'ChangeStreamHistoryLost'), 'reading the change stream', url);
    expect(err).toBeInstanceOf(ChangeStreamHistoryLostError);
    expect(err.retriable).toBe(false);
    expect(err.code).toBe('history_lost');
    expect(err.message).toMatch(/history lost reading the change stream/);
    expect(err.message).toMatch(/SLUICE_SNAPSHOT=initial/);
    expect(err.message).toMatch(/replSetResizeOplog/);
  });

  it.each([
    [260, 'InvalidResumeToken'],
    [280, 'ChangeStreamFatalError'],
    [40647, 'Location40647'],
    [50795, 'Location50795'],
  ])('stops with the same recovery when the server refuses the token (code %i)', (code, name) => {
    const err = classifyMongoError(server(code, name), 'reading the change stream', url);
    expect(err).toBeInstanceOf(ResumeTokenRejectedError);
    expect(err.retriable).toBe(false);
    expect(err.message).toMatch(/take a new snapshot/);
  });

  it('stops on refused credentials, naming the role to grant', () => {
    const err = classifyMongoError(server(13, 'Unauthorized'), 'opening a change stream', url);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.code).toBe('auth');
    expect(err.message).toMatch(/read role/);
  });

  it('retries network errors, elections and resumable change stream errors', () => {
    for (const raw of [
      new MongoNetworkError('connection reset'),
      new MongoServerSelectionError('no primary', { type: 'Unknown' } as never),
      server(189, 'PrimarySteppedDown'),
      server(10107, 'NotWritablePrimary'),
      server(12345, 'SomethingNew', ['ResumableChangeStreamError']),
    ]) {
      const err = classifyMongoError(raw, 'reading the change stream', url);
      expect(err, String(raw)).toBeInstanceOf(RetriableError);
      expect(err.message).toContain(url);
    }
  });

  it('treats any other server error as permanent, and leaves classified errors alone', () => {
    expect(classifyMongoError(server(2, 'BadValue'), 'x', url).retriable).toBe(false);
    const own = new RetriableError('already classified');
    expect(classifyMongoError(own, 'x', url)).toBe(own);
  });
});
