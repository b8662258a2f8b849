/** The transports' timings; their delays are `backoffDelay`'s (src/backoff.ts). */

/** Transport timing defaults, in one place. */
export const TRANSPORT_TIMINGS = Object.freeze({
  /** Ceiling of the first reconnection delay; doubled after each failed attempt, back to this once connected. */
  reconnectBaseMs: 500,
  /**
   * The ceiling never grows past this. Low on purpose: the device is back within this long of its broker's
   * return however long the broker was away (binding.md §2, §3: its status and its queued alerts wait on it).
   * An attempt at a broker that is down costs one refused TCP connection, and the full jitter still spreads a
   * fleet's attempts over the whole interval.
   */
  reconnectCapMs: 3000,
  /**
   * Opening the connection to CONNACK (TCP, TLS, MQTT CONNECT); after this the attempt counts as failed and the
   * next one is scheduled. A CONNACK takes milliseconds on a LAN and a second or two over TLS on a slow link; an
   * attempt that has heard nothing for longer is talking to a host that is not answering (SYNs dropped while it
   * restarts), and MQTT.js's own 30 s would keep the device away that long after its broker is back.
   */
  connectTimeoutMs: 5000,
  /** `stop()` waits this long for the broker to take the retained `offline` before it closes anyway. */
  stopTimeoutMs: 2000,
  /**
   * A connection to a broker named by a party's AppAddr is closed after this long without a send: the device
   * hears its parties on its own broker, so such a connection only carries its own messages out, and a
   * session's next message (or its retries, `session.retries`) comes well within it.
   */
  partyBrokerIdleMs: 5 * 60_000,
})
