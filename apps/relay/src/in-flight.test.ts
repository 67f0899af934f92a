import { type Metrics, noopMetrics } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { sharedInFlight } from './in-flight.js';

describe('sharedInFlight', () => {
  it('reports the sum of every pipeline, and passes everything else through', () => {
    const reported: [number, number][] = [];
    const reconnects: string[] = [];
    const base: Metrics = {
      ...noopMetrics,
      inFlight: (e, b) => reported.push([e, b]),
      reconnect: (c) => reconnects.push(c),
    };
    const view = sharedInFlight(base);
    const postgres = view();
    const mongo = view();
    postgres.inFlight(3, 300);
    mongo.inFlight(2, 20);
    postgres.inFlight(0, 0);
    mongo.reconnect('mongodb');
    expect(reported).toEqual([
      [3, 300],
      [5, 320],
      [2, 20],
    ]);
    expect(reconnects).toEqual(['mongodb']);
  });
});
