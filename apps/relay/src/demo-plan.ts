/**
 * What `sluice demo` does next, from the orders it has open: place a new one, move one along
 * (placed → paid → shipped), or cancel a placed one (a delete). Pure, so the mix is tested.
 */
export type OrderStatus = 'placed' | 'paid';

export type DemoStep =
  | { kind: 'place'; customer: string; total: string }
  | { kind: 'advance'; id: string; from: OrderStatus; to: 'paid' | 'shipped' }
  | { kind: 'cancel'; id: string };

const CUSTOMERS = ['ada', 'grace', 'linus', 'barbara', 'ken', 'margaret', 'edsger', 'radia'];

/** Keep a handful of orders in flight: fewer and the demo mostly places, more and it mostly advances. */
const TARGET_OPEN = 6;

/** `random` returns numbers in [0, 1), like Math.random; `open` maps order id → status. */
export function nextStep(open: ReadonlyMap<string, OrderStatus>, random: () => number): DemoStep {
  const placeChance = open.size === 0 ? 1 : open.size < TARGET_OPEN ? 0.6 : 0.2;
  if (random() < placeChance) {
    const customer = CUSTOMERS[Math.floor(random() * CUSTOMERS.length)] as string;
    // Cents as an integer, then written as numeric text: no binary floating point on the way.
    const cents = 500 + Math.floor(random() * 19_500);
    return {
      kind: 'place',
      customer,
      total: `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`,
    };
  }
  const ids = [...open.keys()];
  const id = ids[Math.floor(random() * ids.length)] as string;
  const from = open.get(id) as OrderStatus;
  if (from === 'placed' && random() < 0.15) return { kind: 'cancel', id };
  return { kind: 'advance', id, from, to: from === 'placed' ? 'paid' : 'shipped' };
}

/** The outbox event type of a step: OrderPlaced, OrderPaid, OrderShipped, OrderCancelled. */
export function eventType(step: DemoStep): string {
  if (step.kind === 'place') return 'OrderPlaced';
  if (step.kind === 'cancel') return 'OrderCancelled';
  return step.to === 'paid' ? 'OrderPaid' : 'OrderShipped';
}
