/**
 * Runs tasks one after another (a promise-chain mutex). The session engine uses one for the tree work of
 * inbound messages, so two parties' messages never interleave inside one transaction's lifetime, and one per
 * session for its inbound messages, which must be handled in arrival order.
 */
export class Serial {
  #tail: Promise<unknown> = Promise.resolve()

  run<T>(task: () => Promise<T> | T): Promise<T> {
    const result = this.#tail.then(task, task)
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    )
    return result
  }
}
