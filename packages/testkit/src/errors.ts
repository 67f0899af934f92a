/** A test server was used after `dispose`, or could not be set up. Says which server. */
export class TestServerError extends Error {
  override name = 'TestServerError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
  }
}
