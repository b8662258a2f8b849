/**
 * FUMO 1.0's result codes (the `Data` of the result alert, binding.md §9), by what they mean to the device. A
 * download or an install that fails throws a `FumoFailure` carrying one, so the alert says why.
 */
import { GwmoError } from '../errors.ts'

export const FUMO_RESULT = Object.freeze({
  SUCCESSFUL: 200,
  CORRUPT_PACKAGE: 402,
  DEVICE_MISMATCH: 403,
  NOT_ACCEPTABLE: 405,
  DOWNLOAD_AUTHENTICATION_FAILURE: 406,
  UPDATE_FAILED: 410,
  MALFORMED_URL: 411,
  SERVER_UNAVAILABLE: 412,
  SERVER_ERROR: 500,
  DOWNLOAD_OUT_OF_SPACE: 501,
  UPDATE_OUT_OF_SPACE: 502,
  NETWORK_FAILURE: 503,
} as const)

export type FumoResult = (typeof FUMO_RESULT)[keyof typeof FUMO_RESULT]

export class FumoFailure extends GwmoError {
  constructor(readonly result: FumoResult, message: string) {
    super(message, 'GWMO_FUMO_FAILURE')
  }
}
