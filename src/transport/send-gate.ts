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
export class SendGate {
  /** Whether the topics are subscribed on the current connection; false again once it is gone. */
  subscribed = false
  // Declared only: most gates never hold a send, and a field set to undefined would cost the emitted class a line.
  private declare waiting: Array<(error?: Error) => void> | undefined

  /** Runs `send` now when subscribed, else once subscribed; rejected when the gate fails first. */
  whenSubscribed(send: () => Promise<void>): Promise<void> {
    if (this.subscribed) return send()
    return new Promise<void>((resolve, reject) => (this.waiting ??= []).push((error) => (error ? reject(error) : resolve()))).then(send)
  }

  /** The topics are subscribed: the sends waiting go, and later ones at once. With an error (the binding stops), they fail. */
  release(error?: Error): void {
    this.subscribed = error === undefined
    const waiting = this.waiting
    this.waiting = undefined
    for (const settle of waiting ?? []) settle(error)
  }
}
