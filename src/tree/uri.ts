/**
 * DM URIs (OMA DM TND 1.2, 6.2 and 7.7): `./DevInfo/DevId` and `DevInfo/DevId` name the same node, `.` is the
 * root, and a property is addressed as `<uri>?prop=<name>`.
 */
import type { SyncMLStatus } from './types.ts'

/** The properties this tree serves; other `?prop=` and `?list=` forms are answered 406. */
export type NodeProperty = 'ACL' | 'Format' | 'Type'

export interface ParsedUri {
  /** `''` for the root, otherwise the segments joined by `/` without the leading `./`. */
  path: string
  prop?: NodeProperty
}

/** `./DevDetail/URI/MaxDepth`, `MaxTotLen`, `MaxSegLen`; 0 means no limit (DM StdObj 1.2, DevDetail). */
export interface UriLimits {
  maxDepth: number
  maxTotLen: number
  maxSegLen: number
}

export const NO_URI_LIMITS: UriLimits = Object.freeze({ maxDepth: 0, maxTotLen: 0, maxSegLen: 0 })

const PROPERTIES: readonly string[] = ['ACL', 'Format', 'Type']

/**
 * Parses and normalises a URI, or gives the status that refuses it: 400 for a malformed URI (`..`, `.` past
 * the start, an empty segment, a trailing `/`), 414 past a DevDetail/URI limit (DM TND 1.2, 6.2), 406 for a
 * property or list query this tree does not serve.
 */
export function parseUri(uri: string, limits: UriLimits = NO_URI_LIMITS): ParsedUri | SyncMLStatus {
  const question = uri.indexOf('?')
  const rest = question < 0 ? uri : uri.slice(0, question)
  let prop: NodeProperty | undefined
  if (question >= 0) {
    const query = uri.slice(question + 1)
    // ?list=Struct / StructData / TNDS: optional in DM 1.2, not served here
    if (query.startsWith('list=')) return 406
    if (!query.startsWith('prop=')) return 400
    prop = query.slice(5) as NodeProperty
    if (!PROPERTIES.includes(prop)) return 406
  }
  const path = rest === '.' ? '' : rest.startsWith('./') ? rest.slice(2) : rest
  if (path === '' && rest !== '.') return 400 // '' or './'
  if (path !== '') {
    const segments = path.split('/')
    for (const segment of segments) {
      // TND 1.2, 6.2: "./" only at the start, no trailing "/", no empty, "." or ".." segment.
      if (segment === '' || segment === '.' || segment === '..') return 400
      if (limits.maxSegLen > 0 && segment.length > limits.maxSegLen) return 414
    }
    if (limits.maxDepth > 0 && segments.length > limits.maxDepth) return 414
    // Counted on the normalised form, so that both notations of one node meet the same limit.
    if (limits.maxTotLen > 0 && path.length > limits.maxTotLen) return 414
  }
  return prop === undefined ? { path } : { path, prop }
}
