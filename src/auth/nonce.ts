import { createHmac } from 'node:crypto'
import { decodeBase64, encodeBase64 } from './bytes.ts'

/**
 * Nonces for `Chal`/`NextNonce` (binding.md section 6: never handed out twice, never brought back by a crash).
 * A nonce is derived from a counter and a secret device key, so the caller only has to persist the counter, and
 * can reserve a range of it ahead instead of syncing the disk for every session.
 */

export const NONCE_BYTES = 16
/** Below 128 bits the key would no longer keep nonces unpredictable. */
export const MIN_DEVICE_KEY_BYTES = 16
const MAX_COUNTER = (1n << 64n) - 1n

/**
 * The first 16 bytes of HMAC-SHA256(deviceKey, counter as 8 bytes big-endian): distinct for distinct counters
 * (HMAC as a PRF), unpredictable without the key. A counter outside 0..2^64-1 or a key under 16 bytes is a
 * programming error and throws a RangeError.
 */
export function deriveNonce(deviceKey: Uint8Array, counter: bigint): Uint8Array {
  if (deviceKey.length < MIN_DEVICE_KEY_BYTES) {
    throw new RangeError(`device key of ${deviceKey.length} bytes, at least ${MIN_DEVICE_KEY_BYTES} needed`)
  }
  if (counter < 0n || counter > MAX_COUNTER) throw new RangeError(`nonce counter ${counter} is outside 0..2^64-1`)
  const block = Buffer.alloc(8)
  block.writeBigUInt64BE(counter)
  return new Uint8Array(createHmac('sha256', deviceKey).update(block).digest().subarray(0, NONCE_BYTES))
}

/** NextNonce text: base64 (OMA DM Representation Protocol 1.2, 4.1.1.2: its Format MUST be b64). */
export const encodeNonce: (bytes: Uint8Array) => string = encodeBase64

/** The octets of a received NextNonce, or undefined when it is not base64. */
export const decodeNonce: (b64: string) => Uint8Array | undefined = decodeBase64
