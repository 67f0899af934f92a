import type { Writable } from 'node:stream';
import { type ComponentStatus, PermanentError, type RelayEvent, type Sink, SluiceError } from '@sluice/core';
import { formatLine } from './line.js';

export interface StdoutSinkOptions {
  /**
   * Receives each line, newline included. A returned promise is the backpressure: the
   * publish resolves when it does. When set, `stream` is not used.
   */
  write?: (line: string) => void | Promise<void>;
  /** Where lines go when `write` is not set. Default `process.stdout`. */
  stream?: Writable;
}

const done = Promise.resolve();

/**
 * A Sink that prints one NDJSON line per event (see `formatLine`), for trying Sluice out and
 * for piping into other tools. A publish resolves once the line is handed to the stream; when
 * the stream's buffer is full it resolves on 'drain', so a slow reader slows the relay down
 * instead of growing memory.
 */
export function createStdoutSink(options: StdoutSinkOptions = {}): Sink {
  const write = options.write;
  const stream = options.stream ?? process.stdout;
  let started = false;
  let failure: PermanentError | undefined;
  let drain: Promise<void> | undefined;
  let rejectDrain: ((err: Error) => void) | undefined;

  const onError = (err: Error) => {
    failure = new PermanentError(`cannot write events to stdout: ${err.message}`, {
      cause: err,
      hint: 'keep the process reading the relay output running (a closed pipe ends the stdout sink)',
    });
    rejectDrain?.(failure);
  };

  function waitForDrain(): Promise<void> {
    // One shared waiter however many publishes hit the full buffer: no listener pile-up.
    drain ??= new Promise<void>((resolve, reject) => {
      rejectDrain = reject;
      stream.once('drain', () => {
        drain = rejectDrain = undefined;
        resolve();
      });
    });
    return drain;
  }

  return {
    name: 'stdout',

    /** Nothing to check: stdout exists, and a closed pipe shows up as a publish error. */
    async check() {},

    async start() {
      if (started || write) {
        started = true;
        return;
      }
      stream.on('error', onError);
      started = true;
    },

    publish(event: RelayEvent): Promise<void> {
      if (failure) return Promise.reject(failure);
      let line: string;
      try {
        line = `${formatLine(event)}\n`;
      } catch (err) {
        return Promise.reject(
          err instanceof SluiceError
            ? err
            : new PermanentError(`cannot format event ${event.id}`, { cause: err }),
        );
      }
      if (write) {
        try {
          return Promise.resolve(write(line));
        } catch (err) {
          return Promise.reject(err);
        }
      }
      return stream.write(line) ? done : waitForDrain();
    },

    async close() {
      if (!started) return;
      started = false;
      if (write === undefined) {
        if (stream.writableNeedDrain && !failure) await waitForDrain().catch(() => undefined);
        stream.off('error', onError);
      }
    },

    status(): ComponentStatus {
      if (failure) return { ready: false, detail: failure.message };
      return started ? { ready: true } : { ready: false, detail: 'not started' };
    },
  };
}
