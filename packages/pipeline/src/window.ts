interface Waiter {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

const ROOM = Promise.resolve();

/**
 * Counts events and approximate bytes handed over and not yet stored, and tells the source when
 * it may read more. An event is always admitted (the source has already read it); the promise
 * returned by `room()` is what holds the source back, so a single event larger than the byte cap
 * still goes through once the events ahead of it are stored.
 */
export class InFlightWindow {
  readonly maxEvents: number;
  readonly maxBytes: number;
  events = 0;
  bytes = 0;
  #waiter: Waiter | undefined;
  #failure: Error | undefined;

  constructor(maxEvents: number, maxBytes: number) {
    this.maxEvents = maxEvents;
    this.maxBytes = maxBytes;
  }

  hasRoom(): boolean {
    return this.events < this.maxEvents && this.bytes < this.maxBytes;
  }

  add(bytes: number): void {
    this.events++;
    this.bytes += bytes;
  }

  release(bytes: number): void {
    this.events--;
    this.bytes -= bytes;
    const waiter = this.#waiter;
    if (waiter !== undefined && this.hasRoom()) {
      this.#waiter = undefined;
      waiter.resolve();
    }
  }

  /** Resolves once the window is under both caps; every caller waiting shares one promise. */
  room(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.hasRoom()) return ROOM;
    if (this.#waiter === undefined) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // The failure also reaches onFatal; a source that dropped this promise must not crash the process.
      promise.catch(() => {});
      this.#waiter = { promise, resolve, reject };
    }
    return this.#waiter.promise;
  }

  /** Rejects the waiting source and every later `room()` call. */
  fail(err: Error): void {
    this.#failure ??= err;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
  }
}
