/**
 * The sessions' port to whatever carries their messages, defined here where it is used: the MQTT binding
 * (binding.md §2) and the HTTP binding (§10) implement it in src/transport, and the runtime hands each message to
 * the one its party's account names. The sessions and GwMO behaviours see parties and payloads, never topics or
 * URLs of their own making.
 */

/** The three inbound channels of binding.md §2, by the last topic level. */
export type Channel = 'dm' | 'notification' | 'bootstrap'

/** The device's own POST that a message came back on (binding.md §10). */
export interface Exchange {
  /** The party the POST was for (its ServerID) and the session it belonged to. */
  party: string
  sessionId: string
}

export interface InboundMessage {
  channel: Channel
  payload: Uint8Array
  /** MQTT 5 content type or HTTP Content-Type, when the sender set one. */
  contentType?: string
  /** MQTT 5 user properties or HTTP headers of the binding (`x-syncml-hmac`, `SEC`, `MAC`); a repeated key keeps its first value. */
  properties: Record<string, string>
  /**
   * Set by the HTTP binding alone: the message is the response to the device's own POST (binding.md §10), on a
   * connection the device opened and no one else writes into. Nothing that comes through a broker has it.
   */
  exchange?: Exchange
}

/** Where a message to a party reached over HTTP goes (binding.md §10). */
export interface HttpRoute {
  /** The account's `AppAddr/<x>/Addr`, an `http://` or `https://` URL. */
  url: string
  /** The RespURI the party named in its last admitted message of this session, if any (the binding checks it). */
  respUri?: string
  sessionId: string
}

export interface OutboundMessage {
  /** LocURI of the party the message is for; the binding maps it to a topic (and, for `mqtt://` AppAddr, a broker). */
  to: string
  /** `mqtt://` / `mqtts://` URL from the party's account AppAddr, if it has one. */
  address?: string
  /**
   * The node name `<x>` of the party's `./DMAcc/<x>` account. A connection to an AppAddr broker is the
   * account's own, with the MQTT ClientId `<clientId>/<x>` (binding.md §6); without it the binding names the
   * connection after the party's LocURI instead. Over HTTP it names the account whose CA and client certificate
   * the connection uses.
   */
  account?: string
  /** Present when the party's account says `Ext/GwmoAgent/Binding` = `http`: the message is POSTed, not published. */
  http?: HttpRoute
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
  /**
   * Resolves once the message is handed over (MQTT: the broker's PUBACK; HTTP: the response is in, and goes to
   * `message` next); rejects if it cannot be, with a `TransportError` when the binding knows why.
   */
  send(message: OutboundMessage): Promise<void>
  /** Publishes `offline`, then disconnects. */
  stop(): Promise<void>
}
