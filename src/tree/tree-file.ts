/**
 * The persisted form of a tree (Anjay's `*_persistence.c` pattern): a magic header, a format version, the body
 * length and a SHA-256 of the body, so that a torn, truncated or bit-flipped file is refused whole.
 *
 *   0  8 bytes  magic "GWMOTREE"
 *   8  u16 BE   version (1)
 *  10  u32 BE   body length
 *  14  32 bytes SHA-256 of the body
 *  46  body     one record per node, parents before children:
 *               u8 format (index in FORMATS), u8 flags (1 type, 2 acl, 4 text data, 8 byte data),
 *               path, then type, acl, data as present; each as a LEB128 length and UTF-8 (or raw) bytes
 */
import { createHash } from 'node:crypto'
import { FORMATS } from './formats.ts'
import { parentPath, pathToUri, shared, TreeNode } from './node.ts'

export const TREE_FILE_VERSION = 1
const MAGIC = 'GWMOTREE'
const HEADER_LENGTH = 46
const FLAG_TYPE = 1
const FLAG_ACL = 2
const FLAG_TEXT = 4
const FLAG_BYTES = 8

export type DecodedNodes = { ok: true; nodes: Map<string, TreeNode> } | { ok: false; error: string }

export function encodeTreeFile(nodes: Iterable<[string, TreeNode]>): Uint8Array {
  const encoder = new TextEncoder()
  const parts: Uint8Array[] = []
  /** A field: its length as LEB128, then its bytes (text as UTF-8). */
  const field = (value: string | Uint8Array): void => {
    const bytes = typeof value === 'string' ? encoder.encode(value) : value
    const length: number[] = []
    let n = bytes.length
    for (; n >= 0x80; n = Math.floor(n / 128)) length.push((n & 0x7f) | 0x80)
    length.push(n)
    parts.push(Uint8Array.from(length), bytes)
  }
  for (const [path, node] of nodes) {
    const { t: type, a: acl, d: data } = node
    const flags = (type === undefined ? 0 : FLAG_TYPE) | (acl === undefined ? 0 : FLAG_ACL) |
      (typeof data === 'string' ? FLAG_TEXT : data === undefined ? 0 : FLAG_BYTES)
    parts.push(Uint8Array.of(FORMATS.indexOf(node.f), flags))
    field(path)
    for (const value of [type, acl, data]) if (value !== undefined) field(value)
  }
  const body = Buffer.concat(parts)
  const file = new Uint8Array(HEADER_LENGTH + body.length)
  const header = new DataView(file.buffer)
  file.set(encoder.encode(MAGIC))
  header.setUint16(8, TREE_FILE_VERSION)
  header.setUint32(10, body.length)
  file.set(sha256(body), 14)
  file.set(body, HEADER_LENGTH)
  return file
}

/**
 * Reads a tree file back, refusing anything not whole and well-formed with a one-line reason. Versions older
 * than the current one would be converted here; version 1 is the first, so any other is refused.
 */
export function decodeTreeFile(file: Uint8Array): DecodedNodes {
  if (file.length < HEADER_LENGTH) return fail(`truncated: ${file.length} bytes, shorter than the ${HEADER_LENGTH}-byte header`)
  const header = Buffer.from(file.buffer, file.byteOffset, HEADER_LENGTH)
  if (header.toString('latin1', 0, 8) !== MAGIC) return fail('not a tree file (bad magic)')
  const version = header.readUInt16BE(8)
  if (version > TREE_FILE_VERSION) return fail(`version ${version} is newer than this agent reads (${TREE_FILE_VERSION})`)
  if (version !== TREE_FILE_VERSION) return fail(`unknown version ${version}`)
  const length = header.readUInt32BE(10)
  if (file.length - HEADER_LENGTH !== length) {
    return fail(`truncated or padded: body is ${file.length - HEADER_LENGTH} bytes, header says ${length}`)
  }
  const body = file.subarray(HEADER_LENGTH)
  if (!sha256(body).equals(header.subarray(14))) return fail('checksum mismatch: the file is corrupt')
  return decodeBodyV1(body)
}

function decodeBodyV1(body: Uint8Array): DecodedNodes {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  let at = 0
  /** Set by a read past the end or a malformed field: the record being read is refused. */
  let failed = false
  const byte = (): number => {
    if (at < body.length) return body[at++]!
    failed = true
    return 0
  }
  /** A field: a LEB128 length of at most 5 bytes, then that many bytes. */
  const bytes = (): Uint8Array => {
    let length = 0
    for (let i = 0; ; i++) {
      const b = byte()
      length += (b & 0x7f) * 128 ** i
      if (b < 0x80) break
      if (i === 4) {
        failed = true
        break
      }
    }
    if (failed || at + length > body.length) {
      failed = true
      return new Uint8Array(0)
    }
    at += length
    return body.slice(at - length, at)
  }
  const text = (): string => {
    try {
      return decoder.decode(bytes())
    } catch {
      failed = true
      return ''
    }
  }
  const nodes = new Map<string, TreeNode>()
  while (at < body.length) {
    const start = at
    const format = FORMATS[byte()]
    const flags = byte()
    const path = text()
    const type = flags & FLAG_TYPE ? text() : undefined
    const acl = flags & FLAG_ACL ? text() : undefined
    const data = flags & FLAG_TEXT ? text() : flags & FLAG_BYTES ? bytes() : undefined
    if (failed || format === undefined || flags > 15) return fail(`malformed record at body byte ${start}`)
    const where = pathToUri(path)
    if (nodes.has(path)) return fail(`${where}: stored twice`)
    if (path === '' ? nodes.size > 0 : nodes.size === 0) return fail('the root is not the first record')
    if (path !== '' && nodes.get(parentPath(path))?.f !== 'node') return fail(`${where}: its parent is missing or a leaf`)
    const binary = format === 'bin' || format === 'b64'
    if (format === 'node' ? data !== undefined : binary ? typeof data === 'string' : typeof data === 'object') {
      return fail(`${where}: data does not fit format ${format}`)
    }
    nodes.set(shared(path), new TreeNode(format, type, data, acl))
  }
  if (nodes.size === 0) return fail('no root node')
  return { ok: true, nodes }
}

function fail(error: string): DecodedNodes {
  return { ok: false, error }
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest()
}
