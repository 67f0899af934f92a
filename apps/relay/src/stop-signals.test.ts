import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { listenForStop, REPEAT_MS, type StopSignals } from './stop-signals.js';

const listening: StopSignals[] = [];
afterEach(() => {
  for (const s of listening.splice(0)) s.dispose();
});

function listen() {
  let clock = 0;
  const exits: number[] = [];
  const stop = listenForStop({
    logger: createLogger('silent'),
    now: () => clock,
    exit: (code) => exits.push(code),
  });
  listening.push(stop);
  return {
    stop,
    exits,
    at(ms: number, signal: NodeJS.Signals) {
      clock = ms;
      process.emit(signal, signal);
    },
  };
}

describe('stop signals of sluice run', () => {
  it('the first signal requests a stop, naming itself', () => {
    const { stop, exits, at } = listen();
    at(0, 'SIGTERM');
    expect(stop.signal.aborted).toBe(true);
    expect(stop.signal.reason).toBe('SIGTERM');
    expect(exits).toEqual([]);
  });

  it('the same signal again at once (npm forwarding Ctrl-C) is the same request', () => {
    const { stop, exits, at } = listen();
    at(0, 'SIGINT');
    at(9, 'SIGINT');
    at(REPEAT_MS - 1, 'SIGINT');
    expect(stop.signal.aborted).toBe(true);
    expect(exits).toEqual([]);
  });

  it('a signal later, or another signal, exits at once with 130', () => {
    const later = listen();
    later.at(0, 'SIGINT');
    later.at(REPEAT_MS, 'SIGINT');
    expect(later.exits).toEqual([130]);
    later.stop.dispose();

    const other = listen();
    other.at(0, 'SIGINT');
    other.at(1, 'SIGTERM');
    expect(other.exits).toEqual([130]);
  });
});
