import type { RelayLogger } from './logger.js';

/**
 * The same signal again within this many milliseconds of the first is the same stop request.
 * Under `npm start` a terminal's Ctrl-C reaches the relay twice, microseconds apart: from the
 * terminal (the whole foreground process group) and forwarded by npm, which passes SIGINT and
 * SIGTERM on to its child. A person pressing Ctrl-C again to cut the drain short is slower.
 */
export const REPEAT_MS = 500;

export interface StopSignals {
  /** Aborted by the first SIGTERM or SIGINT; `reason` is the signal's name. */
  readonly signal: AbortSignal;
  /** Stops listening (the default disposition returns: a later signal ends the process). */
  dispose(): void;
}

export interface StopSignalOptions {
  /** Where the repeats and the second signal are logged; none for commands that print to stdout. */
  logger?: RelayLogger;
  /** Injected by tests. */
  now?: () => number;
  exit?: (code: number) => void;
}

/**
 * SIGTERM and SIGINT for the whole of a command (`sluice run`, embedded servers included; `demo`,
 * `tail`): the first asks for a stop (the relay drains, then stops its embedded servers); a
 * different signal, or the same one after REPEAT_MS, exits at once with 130 (the embedded servers'
 * exit hook still asks them to stop). One listener for the whole run, so no phase (start-up, drain,
 * stopping the embedded servers) is left with the default disposition, which would end the process
 * before its servers.
 */
export function listenForStop(options: StopSignalOptions = {}): StopSignals {
  const { logger } = options;
  const now = options.now ?? (() => performance.now());
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const controller = new AbortController();
  let first: { signal: NodeJS.Signals; at: number } | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    const at = now();
    if (first === undefined) {
      first = { signal, at };
      controller.abort(signal);
      return;
    }
    if (signal === first.signal && at - first.at < REPEAT_MS) {
      logger?.debug({ signal }, 'the same signal again at once (npm forwards Ctrl-C): still stopping');
      return;
    }
    logger?.warn({ signal }, 'second signal: exiting at once, without draining');
    logger?.flush();
    exit(130);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
