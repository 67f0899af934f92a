import { describe, expect, it } from 'vitest';
import { type DemoStep, eventType, nextStep, type OrderStatus } from './demo-plan.js';

/** A repeatable stand-in for Math.random. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

describe('nextStep', () => {
  it('places an order when none is open, with a total in cents written as numeric text', () => {
    const step = nextStep(new Map(), () => 0.5);
    expect(step).toMatchObject({ kind: 'place' });
    expect((step as Extract<DemoStep, { kind: 'place' }>).total).toMatch(/^\d+\.\d{2}$/);
  });

  it('moves orders along placed → paid → shipped and cancels only placed ones', () => {
    const open = new Map<string, OrderStatus>([['1', 'paid']]);
    expect(nextStep(open, () => 0.9)).toEqual({ kind: 'advance', id: '1', from: 'paid', to: 'shipped' });
    open.set('1', 'placed');
    expect(nextStep(open, () => 0.9)).toEqual({ kind: 'advance', id: '1', from: 'placed', to: 'paid' });
    const rolls = [0.9, 0, 0.1];
    expect(nextStep(open, () => rolls.shift() ?? 0)).toEqual({ kind: 'cancel', id: '1' });
  });

  it('keeps a handful of orders in flight over a long run, with every kind of step', () => {
    const random = seeded(7);
    const open = new Map<string, OrderStatus>();
    const seen = new Set<string>();
    let next = 1;
    let most = 0;
    for (let i = 0; i < 2000; i++) {
      const step = nextStep(open, random);
      seen.add(eventType(step));
      if (step.kind === 'place') open.set(String(next++), 'placed');
      else if (step.kind === 'cancel' || step.to === 'shipped') open.delete(step.id);
      else open.set(step.id, 'paid');
      most = Math.max(most, open.size);
    }
    expect([...seen].sort()).toEqual(['OrderCancelled', 'OrderPaid', 'OrderPlaced', 'OrderShipped']);
    expect(most).toBeLessThan(30);
  });
});
