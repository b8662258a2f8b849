/**
 * The small port between the agent and whatever carries its messages. The MQTT binding (binding.md §2)
 * implements it; the sessions and GwMO behaviours see parties and payloads, never topics.
 */

/** The three inbound channels of binding.md §2, by the last topic level. */
export type Channel = 'dm' | 'notification' | 'bootstrap'

export interface InboundMessage {
  channel: Channel
  payload: Uint8Array
  /** MQTT 5 content type, when the sender set one. */
  contentType?: string
  /** MQTT 5 user properties (`x-syncml-hmac`, `SEC`, `MAC`); a repeated key keeps its first value. */
  properties: Record<string, string>
}

export interface OutboundMessage {
  /** LocURI of the party the message is for; the binding maps it to a topic (and, for `mqtt://` AppAddr, a broker). */
  to: string
  /** `mqtt://` / `mqtts://` URL from the party's account AppAddr, if it has one. */
  address?: string
  /**
   * The node name `<x>` of the party's `./DMAcc/<x>` account. A connection to an AppAddr broker is the
   * account's own, with the MQTT ClientId `<clientId>/<x>` (binding.md §6); without it the binding names the
   * connection after the party's LocURI instead.
   */
  account?: string
  payload: Uint8Array
  contentType: string
  properties?: Record<string, string>
}

export interface TransportEvents {
  message(message: InboundMessage): void
  /** Emitted on every (re)connection, once subscriptions are in place. */
  online(): void
  offline(): void
}

export interface Transport {
  start(events: TransportEvents): Promise<void>
  /** Resolves once the broker has the message (QoS 1 PUBACK); rejects if it cannot be handed over. */
  send(message: OutboundMessage): Promise<void>
  /** Publishes `offline`, then disconnects. */
  stop(): Promise<void>
}
