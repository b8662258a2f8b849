/**
 * Protocol timings and limits of the session engine, in one place (node-coap `parameters.ts` style). Each engine
 * instance takes its own copy (`sessionConstants(overrides)`), so thousands of engines in one process never share
 * mutable settings and a test can shorten any of them.
 */
export interface SessionConstants {
  /** SyncML DM version fields of every message we send (OMA DM Protocol 1.2, 8.1: VerDTD 1.2, VerProto DM/1.2). */
  verDTD: string
  verProto: string
  /**
   * How long we wait for the party's answer to a message we sent before sending it again with the same MsgID
   * (binding.md §3: MQTT is at least once between a client and the broker only, not end to end).
   */
  sessionTimeoutMs: number
  /** How many times a message is sent again after a timeout before the session fails. */
  retransmitCount: number
  /**
   * After the transport reconnects, a session waiting for an answer sends its last message again if none comes
   * within this long, instead of the session timeout (binding.md §3): the outage may have lost the message or its
   * answer, or the message may have reached the broker before the party, back a little later than the device,
   * was listening again. Long enough for an answer already on its way to arrive first.
   */
  reconnectResendMs: number
  /**
   * A message an HTTP server did not take (binding.md §10: connection error, timeout, 5xx) goes again after a random
   * delay below this, doubled for each resend, never above the session timeout.
   */
  lostResendBaseMs: number
  /** A failed client-initiated session is retried after base · 2^n ms (n = failures so far), with jitter… */
  retryBackoffBaseMs: number
  /** …never more than this apart. */
  retryBackoffCapMs: number
  /**
   * Answers to failed authentication per party: a token bucket refilled at this rate, holding at most
   * `authFailureBurst` answers (binding.md §6: "a few per second; the rest is dropped and logged"). A party's
   * session after one that ended on its status-only message begins with one such answer (its nonce is spent), so
   * the bucket leaves room for a party that opens several sessions in a row.
   */
  authFailureAnswersPerSecond: number
  authFailureBurst: number
  /**
   * Nonce counter values reserved (and persisted) ahead in one disk write (binding.md §6): a crash skips the
   * rest of the block, so no nonce ever comes back, and only one session in this many costs a disk sync.
   */
  nonceReservationBlock: number
  /** How often Package 1 is sent again with new credentials after the party challenged them (401/407). */
  maxPackage1Resends: number
  /**
   * Our own MaxMsgSize (OMA DM RepPro 1.2, MetInf), announced in every SyncHdr; binding.md §2's 64 KiB default, the
   * agent's configured `maxPacketSize`. It is also the broker's limit on what we send (binding.md §11): every
   * message of ours fits it, less `packetHeadroomBytes`, whatever MaxMsgSize the party announced or did not.
   */
  maxMsgSize: number
  /** Room left in an MQTT packet for its fixed header, topic and properties (content type, `x-syncml-hmac`). */
  packetHeadroomBytes: number
  /** Generic Alerts put in one Package 1; more stay queued for the next session. */
  maxGenericAlertsPerPackage: number
  /**
   * Generic Alerts waiting for one party (binding.md §11); past it the oldest that may be dropped goes (see
   * `SessionManager.keepQueued`). The agent's `limits.pendingAlertsPerParty`.
   */
  maxPendingAlertsPerParty: number
  /** Requests (opened sessions and pushed messages) that may wait behind a party's active session. */
  maxQueuedPerParty: number
  /**
   * How long an ended session (and a refused push) is remembered, so that a late duplicate of its messages is
   * answered from it (or ignored) instead of starting a new session.
   */
  endedSessionMemoryMs: number
  /** Ended sessions remembered per party (the oldest is forgotten first). */
  endedSessionsPerParty: number
  /** Parties tracked for rate limits and logs (least recently seen evicted), so a flood of names stays bounded. */
  maxTrackedParties: number
  /**
   * A warning a flood can trigger (a party without an account, refused or dropped messages, a full queue) is
   * logged at most once in this many ms per party and kind, with the count of those left out (binding.md §6).
   */
  quietLogIntervalMs: number
  /**
   * When nonce bookkeeping alone dirtied the tree, it is flushed this long after, not before the reply: the
   * counter reservation already guarantees that no nonce is issued twice (binding.md §6).
   */
  lazyFlushDelayMs: number
}

export const DEFAULT_SESSION_CONSTANTS: Readonly<SessionConstants> = Object.freeze({
  verDTD: '1.2',
  verProto: 'DM/1.2',
  sessionTimeoutMs: 30_000,
  retransmitCount: 3,
  reconnectResendMs: 3_000,
  lostResendBaseMs: 1_000,
  retryBackoffBaseMs: 5_000,
  retryBackoffCapMs: 600_000,
  authFailureAnswersPerSecond: 5,
  authFailureBurst: 10,
  nonceReservationBlock: 64,
  maxPackage1Resends: 2,
  maxMsgSize: 65_536,
  packetHeadroomBytes: 512,
  maxGenericAlertsPerPackage: 16,
  maxPendingAlertsPerParty: 16,
  maxQueuedPerParty: 8,
  endedSessionMemoryMs: 600_000,
  endedSessionsPerParty: 8,
  maxTrackedParties: 1024,
  quietLogIntervalMs: 1_000,
  lazyFlushDelayMs: 30_000,
})

/** A private copy of the defaults with the given overrides applied; refuses values that cannot work. */
export function sessionConstants(overrides: Partial<SessionConstants> = {}): SessionConstants {
  const merged: SessionConstants = { ...DEFAULT_SESSION_CONSTANTS, ...overrides }
  for (const [key, value] of Object.entries(merged)) {
    if (typeof value === 'number' && !(value >= 0)) throw new RangeError(`session constant ${key} must be a number ≥ 0`)
  }
  // A block of no nonces would reserve forever; a bucket holding less than one answer would never answer.
  for (const key of ['nonceReservationBlock', 'authFailureBurst', 'maxPendingAlertsPerParty'] as const) {
    if (merged[key] < 1) throw new RangeError(`session constant ${key} must be ≥ 1`)
  }
  if (merged.packetHeadroomBytes >= merged.maxMsgSize) throw new RangeError('session constant packetHeadroomBytes must be less than maxMsgSize')
  return merged
}

/** The most bytes a message of ours to a party may have (binding.md §11): its MaxMsgSize and the broker's, the smaller. */
export function messageLimit(constants: SessionConstants, partyMaxMsgSize: number | undefined): number {
  const broker = constants.maxMsgSize - constants.packetHeadroomBytes
  return partyMaxMsgSize !== undefined && partyMaxMsgSize > 0 ? Math.min(partyMaxMsgSize, broker) : broker
}
