/**
 * The neutral document form that both encodings meet in: XML text and WBXML bytes decode into it and encode
 * from it, and the SyncML model is read from and written to it. Keeping the two encodings apart from the
 * SyncML model is what lets one model serve both.
 */
export interface XmlElement {
  /** Local name, as in the SyncML DTD (`SyncML`, `CmdID`, `Type`…). */
  name: string
  /** Attributes, `xmlns` included (MetInf elements carry `xmlns="syncml:metinf"` in XML). */
  attrs: Record<string, string>
  children: XmlChild[]
}

/** Character data; `cdata` records that it came from (or must go out as) a CDATA section. */
export interface XmlText {
  text: string
  cdata: boolean
}

/** WBXML opaque data (binary Data, embedded WBXML documents). XML carries it as base64 text. */
export interface XmlOpaque {
  opaque: Uint8Array
}

export type XmlChild = XmlElement | XmlText | XmlOpaque

export function isElement(child: XmlChild): child is XmlElement {
  return 'name' in child
}

export function isText(child: XmlChild): child is XmlText {
  return 'text' in child
}

export function isOpaque(child: XmlChild): child is XmlOpaque {
  return 'opaque' in child
}

/** Bounds every decoder applies before and while it reads, so hostile input cannot exhaust the device. */
export interface DecodeLimits {
  maxBytes: number
  maxDepth: number
  maxElements: number
}

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxBytes: 64 * 1024,
  maxDepth: 32,
  maxElements: 8192,
})

/** The limits a decoder applies: those given, and the defaults for the rest. */
export function resolveLimits(limits?: Partial<DecodeLimits>): DecodeLimits {
  return {
    maxBytes: limits?.maxBytes ?? DEFAULT_DECODE_LIMITS.maxBytes,
    maxDepth: limits?.maxDepth ?? DEFAULT_DECODE_LIMITS.maxDepth,
    maxElements: limits?.maxElements ?? DEFAULT_DECODE_LIMITS.maxElements,
  }
}
