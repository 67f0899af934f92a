import type { Metrics } from '@sluice/core';

/**
 * Two pipelines (Postgres and MongoDB in one process) report to one in-flight gauge pair: each
 * gets a view of the metrics whose `inFlight` reports the sum of both, not the last caller's value.
 */
export function sharedInFlight<M extends Metrics>(metrics: M): () => M {
  const shares: { events: number; bytes: number }[] = [];
  return () => {
    const share = { events: 0, bytes: 0 };
    shares.push(share);
    return new Proxy(metrics, {
      get(target, prop, receiver) {
        if (prop !== 'inFlight') return Reflect.get(target, prop, receiver);
        return (events: number, bytes: number) => {
          share.events = events;
          share.bytes = bytes;
          let e = 0;
          let b = 0;
          for (const s of shares) {
            e += s.events;
            b += s.bytes;
          }
          target.inFlight(e, b);
        };
      },
    });
  };
}
