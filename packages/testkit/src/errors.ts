/** A test server could not be set up, started or reached. Says which server and carries its log tail. */
export class TestServerError extends Error {
  override name = 'TestServerError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
  }
}

/** `waitFor` reached its deadline before the condition held. */
export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
  }
}
