/** Label value that stands for every label set beyond a family's cap. */
export const OVERFLOW_LABEL = '_other';

type Labels = Record<string, string>;

/**
 * Maps label values to the ones a cell is kept under (say, a capped table name to `_other`).
 * Called only when a lookup misses; returns `values` itself when nothing changes.
 */
export type Canonicalize = (values: readonly string[]) => readonly string[];

/**
 * Accumulators ("cells") per label set, found by nested Map lookups on the label values.
 *
 * This is the hot path: events arrive at ~50k/s and each is counted twice. prom-client's
 * `labels(...).inc()` hashes and validates the label object on every call (~1 µs for a counter
 * and a histogram); a nested lookup on strings V8 has already hashed plus `n++` costs ~30 ns.
 * The cells are copied into prom-client metrics when Prometheus scrapes.
 *
 * `maxCells` bounds cardinality: a caller that passes an unbounded value (an id, an error
 * message) gets one overflow cell whose labels are all `_other`, not a series per value.
 * `canonicalize` caps single labels before that (see `ValueCap`). Values it folds are never
 * memoised: remembering each folded value would grow memory with the data the cap bounds.
 */
export class CellTree<C> {
  readonly #root = new Map<string, unknown>();
  readonly #cells: C[] = [];
  #overflow: C | undefined;

  constructor(
    private readonly labelNames: readonly string[],
    private readonly maxCells: number,
    private readonly create: (labels: Readonly<Labels>) => C,
    private readonly canonicalize?: Canonicalize,
  ) {}

  one(a: string): C {
    return (this.#root as Map<string, C>).get(a) ?? this.#miss([a]);
  }

  two(a: string, b: string): C {
    const level = this.#root.get(a) as Map<string, C> | undefined;
    return level?.get(b) ?? this.#miss([a, b]);
  }

  four(a: string, b: string, c: string, d: string): C {
    const l1 = this.#root.get(a) as Map<string, Map<string, Map<string, C>>> | undefined;
    return l1?.get(b)?.get(c)?.get(d) ?? this.#miss([a, b, c, d]);
  }

  /** Every cell, the overflow cell last if it exists. */
  cells(): readonly C[] {
    return this.#overflow === undefined ? this.#cells : [...this.#cells, this.#overflow];
  }

  #miss(values: readonly string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new RangeError(
        `CellTree for labels [${this.labelNames.join(', ')}] looked up with ${values.length} values`,
      );
    }
    const canonical = this.canonicalize?.(values) ?? values;
    if (canonical !== values) return this.#find(canonical) ?? this.#insert(canonical);
    return this.#insert(values);
  }

  #find(values: readonly string[]): C | undefined {
    let level: unknown = this.#root;
    for (const value of values) {
      if (!(level instanceof Map)) return undefined;
      level = level.get(value);
    }
    return level as C | undefined;
  }

  #insert(values: readonly string[]): C {
    if (this.#cells.length >= this.maxCells) {
      this.#overflow ??= this.create(Object.fromEntries(this.labelNames.map((n) => [n, OVERFLOW_LABEL])));
      return this.#overflow;
    }
    const labels: Labels = {};
    this.labelNames.forEach((name, i) => {
      labels[name] = values[i] as string;
    });
    const cell = this.create(labels);
    let level = this.#root;
    for (let i = 0; i < values.length - 1; i++) {
      const key = values[i] as string;
      let next = level.get(key) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(key, next);
      }
      level = next;
    }
    level.set(values[values.length - 1] as string, cell);
    this.#cells.push(cell);
    return cell;
  }
}

/**
 * Admits the first `max` distinct values of a label that comes from data (table names, outbox
 * aggregate types); every later value becomes `_other`. Admission is first come, for the life of
 * the process: a value keeps its series once it has one.
 */
export class ValueCap {
  readonly #admitted = new Set<string>();

  constructor(readonly max: number) {}

  admit(value: string): string {
    if (this.#admitted.has(value)) return value;
    if (this.#admitted.size >= this.max) return OVERFLOW_LABEL;
    this.#admitted.add(value);
    return value;
  }
}
