/**
 * How the decoders stop at the first fault without throwing at their callers: deep inside a decoder, `fault`
 * throws a `Fault` naming the problem and its place; at the decoder's boundary, `catchFault` turns it into the
 * `Decoded` failure its callers get. One mechanism for the XML, WBXML and SyncML readers.
 */
import type { Decoded, DecodeErrorCode } from './errors.ts'
import { decoded, failed } from './errors.ts'

export class Fault {
  constructor(
    readonly message: string,
    /** A byte or character offset, or an element path such as `SyncML/SyncBody/Alert[2]/CmdID`. */
    readonly at: number | string,
    /** Unset for a syntax fault: the boundary knows which syntax it was reading. */
    readonly code?: DecodeErrorCode,
  ) {}
}

export function fault(message: string, at: number | string, code?: DecodeErrorCode): never {
  throw new Fault(message, at, code)
}

/** Runs `read`; a `Fault` it throws becomes a failure (with `syntax` as its code unless it names one). */
export function catchFault<T>(syntax: DecodeErrorCode, read: () => T): Decoded<T> {
  try {
    return decoded(read())
  } catch (e) {
    if (e instanceof Fault) return failed(e.code ?? syntax, e.message, e.at)
    throw e
  }
}
