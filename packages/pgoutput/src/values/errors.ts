/**
 * A column's text is not what Postgres prints for its type. Permanent for the event that carries it.
 * The usual cause is a session setting of the replication connection that changes output formats
 * (DateStyle must be ISO, IntervalStyle postgres or iso_8601, bytea_output hex or escape).
 */
export class PgValueParseError extends Error {
  override name = 'PgValueParseError';
  readonly typeName: string;
  readonly typeOid: number;
  /** The offending text, cut to 200 characters. */
  readonly text: string;
  readonly problem: string;
  /** The column, when the value came through tupleToRow. */
  readonly column: string | undefined;

  constructor(
    typeName: string,
    typeOid: number,
    text: string,
    problem: string,
    options: { cause?: unknown; column?: string } = {},
  ) {
    const shown = text.length > 200 ? `${text.slice(0, 200)}…` : text;
    const where = options.column === undefined ? '' : `column ${JSON.stringify(options.column)}: `;
    super(
      `${where}cannot parse ${typeName} (type OID ${typeOid}) value ${JSON.stringify(shown)}: ${problem}`,
      'cause' in options ? { cause: options.cause } : {},
    );
    this.typeName = typeName;
    this.typeOid = typeOid;
    this.text = shown;
    this.problem = problem;
    this.column = options.column;
  }

  /** The same error, naming the column it was read from. */
  inColumn(column: string): PgValueParseError {
    return new PgValueParseError(this.typeName, this.typeOid, this.text, this.problem, {
      column,
      ...('cause' in this ? { cause: this.cause } : {}),
    });
  }
}

/** A tuple does not have one value per column of its Relation message (a stale or wrong relation). */
export class TupleShapeError extends Error {
  override name = 'TupleShapeError';
  readonly expected: number;
  readonly actual: number;

  constructor(expected: number, actual: number) {
    super(
      `tuple has ${actual} column(s) but the relation has ${expected}; decode it with the columns of the latest Relation message for its relation OID`,
    );
    this.expected = expected;
    this.actual = actual;
  }
}
