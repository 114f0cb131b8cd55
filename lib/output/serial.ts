// Sinks get overlapping addBlob calls (one per finished download) but write one thing at a time: a tar is a
// single stream, and an OCI layout's abort must know exactly which files exist. This queue runs tasks in order.
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /** Run `task` after every task queued before it has settled (whether it succeeded or not). */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }

  /** Resolves once every task queued so far has settled; never rejects. */
  async settled(): Promise<void> {
    await this.#tail;
  }
}
