/** Promises still running, so that stop() can wait for every operation a component started. */
export class InFlight {
  private readonly running = new Set<Promise<unknown>>();

  /** Follows `promise` until it settles; returns it unchanged. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.running.add(promise);
    const remove = () => this.running.delete(promise);
    promise.then(remove, remove);
    return promise;
  }

  /** Resolves once nothing is running, including what the awaited operations started meanwhile. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
