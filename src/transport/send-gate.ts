/**
 * Sends held until the device's own topics are subscribed on the current connection. MQTT.js flushes its
 * offline queue before the `connect` event that subscribes, so a message queued before (Package 1 of the first
 * session) would leave first and its answer arrive while the device hears nothing. A publish already in flight
 * when a connection drops is MQTT.js's own to send again, and it does so on the next connection before that
 * subscription: its answer can be missed, and the session sends the message again soon after the reconnection
 * (`SessionManager.reconnected`).
 *
 * A class, so that a fleet's device port can be one: thousands of them, with no object of its own each.
 */
interface Waiter {
  resolve(): void
  reject(error: Error): void
}

export class SendGate {
  subscribed = false
  private waiting: Waiter[] | undefined

  /** Runs `send` now when subscribed, else once subscribed; rejected when the gate fails first. */
  whenSubscribed(send: () => Promise<void>): Promise<void> {
    if (this.subscribed) return send()
    return new Promise<void>((resolve, reject) => (this.waiting ??= []).push({ resolve, reject })).then(send)
  }

  /** The topics are subscribed: the sends waiting go, and later ones go at once. */
  open(): void {
    this.subscribed = true
    for (const waiter of this.take()) waiter.resolve()
  }

  /** The connection is gone: sends wait for the next one. */
  shut(): void {
    this.subscribed = false
  }

  /** The binding stops: the sends waiting are rejected. */
  fail(error: Error): void {
    for (const waiter of this.take()) waiter.reject(error)
  }

  private take(): Waiter[] {
    const waiting = this.waiting ?? []
    this.waiting = undefined
    return waiting
  }
}
