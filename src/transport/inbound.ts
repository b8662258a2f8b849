/**
 * What the binding does with one inbound PUBLISH before the agent sees it: only the device's own topics, and
 * nothing over the Maximum Packet Size it announced (binding.md §2; a broker that ignores the announcement
 * must not make the device hold more than it said it would take).
 */
import type { Logger } from '../log.ts'
import { QuietLog } from '../rate-limit.ts'
import type { InboundMessage } from '../session/port.ts'
import { parseTopic } from './topics.ts'

/** The parts of an MQTT.js PUBLISH packet this reads. */
export interface PublishPacketLike {
  /** Remaining Length of the fixed header (MQTT 5, 2.1.4), as the packet parser reports it. */
  length?: number
  properties?: {
    contentType?: string
    userProperties?: Record<string, string | string[]>
  }
}

export type InboundResult =
  | { ok: true; message: InboundMessage }
  | { ok: false; reason: 'unknown-topic' | 'too-large'; bytes?: number }

/** Size of the whole packet on the wire: one type byte, the Remaining Length's variable-length integer, the rest. */
export function packetSize(remainingLength: number): number {
  let lengthBytes = 1
  for (let n = remainingLength; n >= 128; n = Math.floor(n / 128)) lengthBytes++
  return 1 + lengthBytes + remainingLength
}

/** A repeated user property keeps its first value (session/port.ts). */
function firstValues(properties: Record<string, string | string[]> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(properties ?? {})) {
    const first = Array.isArray(value) ? value[0] : value
    if (first !== undefined) out[key] = first
  }
  return out
}

export function classifyInbound(
  expected: { prefix: string; deviceId: string; maxPacketSize: number },
  topic: string,
  payload: Uint8Array,
  packet: PublishPacketLike,
): InboundResult {
  // Without a parsed length, the payload and topic alone are a lower bound of the packet size.
  const bytes = packet.length !== undefined ? packetSize(packet.length) : payload.length + Buffer.byteLength(topic)
  if (bytes > expected.maxPacketSize) return { ok: false, reason: 'too-large', bytes }
  const channel = parseTopic(expected.prefix, expected.deviceId, topic)
  if (channel === undefined) return { ok: false, reason: 'unknown-topic' }
  const contentType = packet.properties?.contentType
  return {
    ok: true,
    message: {
      channel,
      payload,
      ...(contentType !== undefined && { contentType }),
      properties: firstValues(packet.properties?.userProperties),
    },
  }
}

/** One warning line for what `classifyInbound` drops: anyone on the broker can send these, so a line a second for each kind, with the count of the rest. */
export function inboundDropLog(log: Logger, maxPacketSize: number): (topic: string, drop: { reason: string; bytes?: number }) => void {
  const quiet = new QuietLog(1000, 4)
  return (topic, drop) =>
    quiet.note(drop.reason, Date.now(), (suppressed) => {
      if (drop.reason === 'too-large') log.warn('dropped inbound message over the maximum packet size', { topic, bytes: drop.bytes, max: maxPacketSize, suppressed })
      else log.warn('dropped inbound message on an unknown topic', { topic, suppressed })
    })
}
