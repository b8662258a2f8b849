/**
 * The encoded forms of a tree. In the store (src/store) each node is one entry of the `tree` namespace: its path
 * the key, `encodeNode` the value (format, flags, then type, ACL and data as present), parents before children.
 *
 * The whole-tree file below is how agents before the store kept the tree (`tree.dat`): read once to migrate a
 * device (runtime/migrate.ts), and a compact snapshot of a tree for comparisons. Anjay's `*_persistence.c`
 * pattern: a magic header, a format version, the body length and a SHA-256 of the body, so that a torn,
 * truncated or bit-flipped file is refused whole.
 *
 *   0  8 bytes  magic "GWMOTREE"
 *   8  u16 BE   version (1)
 *  10  u32 BE   body length
 *  14  32 bytes SHA-256 of the body
 *  46  body     one record per node, parents before children:
 *               u8 format (index in FORMATS), u8 flags (1 type, 2 acl, 4 text data, 8 byte data, 16 adder),
 *               path, then type, acl, data and the ServerID of the party that added the node (binding.md §11: its
 *               quota), as present; each as a LEB128 length and UTF-8 (or raw) bytes
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
const FLAG_ADDER = 16

export type DecodedNodes = { ok: true; nodes: Map<string, TreeNode> } | { ok: false; error: string }

const ENCODER = new TextEncoder()

/** A field: its length as LEB128, then its bytes (text as UTF-8). */
function pushField(parts: Uint8Array[], value: string | Uint8Array): void {
  const bytes = typeof value === 'string' ? ENCODER.encode(value) : value
  const length: number[] = []
  let n = bytes.length
  for (; n >= 0x80; n = Math.floor(n / 128)) length.push((n & 0x7f) | 0x80)
  length.push(n)
  parts.push(Uint8Array.from(length), bytes)
}

function pushNode(parts: Uint8Array[], node: TreeNode): void {
  const { t: type, a: acl, d: data, c: adder } = node
  const flags = (type === undefined ? 0 : FLAG_TYPE) | (acl === undefined ? 0 : FLAG_ACL) |
    (typeof data === 'string' ? FLAG_TEXT : data === undefined ? 0 : FLAG_BYTES) | (adder === undefined ? 0 : FLAG_ADDER)
  parts.push(Uint8Array.of(FORMATS.indexOf(node.f), flags))
  for (const value of [type, acl, data, adder]) if (value !== undefined) pushField(parts, value)
}

/** A node as the store keeps it (its path is the entry's key): format, flags, then type, ACL and data. */
export function encodeNode(node: TreeNode): Uint8Array {
  const parts: Uint8Array[] = []
  pushNode(parts, node)
  return Buffer.concat(parts)
}

export function encodeTreeFile(nodes: Iterable<[string, TreeNode]>): Uint8Array {
  const encoder = ENCODER
  const parts: Uint8Array[] = []
  for (const [path, node] of nodes) {
    const at = parts.length
    pushNode(parts, node)
    // The file puts the path between the flags and the fields.
    const fields = parts.splice(at + 1)
    pushField(parts, path)
    parts.push(...fields)
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

/** Reads fields from `bytes`; `failed` is set by a read past the end or a malformed field. */
class FieldReader {
  at = 0
  failed = false
  readonly #decoder = new TextDecoder('utf-8', { fatal: true })

  constructor(readonly bytes: Uint8Array) {}

  byte(): number {
    if (this.at < this.bytes.length) return this.bytes[this.at++]!
    this.failed = true
    return 0
  }

  /** A field: a LEB128 length of at most 5 bytes, then that many bytes. */
  field(): Uint8Array {
    let length = 0
    for (let i = 0; ; i++) {
      const b = this.byte()
      length += (b & 0x7f) * 128 ** i
      if (b < 0x80) break
      if (i === 4) {
        this.failed = true
        break
      }
    }
    if (this.failed || this.at + length > this.bytes.length) {
      this.failed = true
      return new Uint8Array(0)
    }
    this.at += length
    return this.bytes.slice(this.at - length, this.at)
  }

  text(): string {
    try {
      return this.#decoder.decode(this.field())
    } catch {
      this.failed = true
      return ''
    }
  }
}

/** Format, flags, then type, ACL and data as the flags say; undefined when malformed. */
function readNode(reader: FieldReader, readPath: boolean): { path: string; node: TreeNode } | { path: string; error: string } | undefined {
  const format = FORMATS[reader.byte()]
  const flags = reader.byte()
  const path = readPath ? reader.text() : ''
  const type = flags & FLAG_TYPE ? reader.text() : undefined
  const acl = flags & FLAG_ACL ? reader.text() : undefined
  const data = flags & FLAG_TEXT ? reader.text() : flags & FLAG_BYTES ? reader.field() : undefined
  const adder = flags & FLAG_ADDER ? reader.text() : undefined
  if (reader.failed || format === undefined || flags > 31) return undefined
  const binary = format === 'bin' || format === 'b64'
  if (format === 'node' ? data !== undefined : binary ? typeof data === 'string' : typeof data === 'object') {
    return { path, error: `data does not fit format ${format}` }
  }
  return { path, node: new TreeNode(format, type, data, acl, adder) }
}

/** Takes nodes in order and refuses a tree that is not whole: the root first, every parent an interior node before its children. */
class NodeCollector {
  readonly nodes = new Map<string, TreeNode>()

  add(path: string, node: TreeNode): string | undefined {
    const nodes = this.nodes
    const where = pathToUri(path)
    if (nodes.has(path)) return `${where}: stored twice`
    if (path === '' ? nodes.size > 0 : nodes.size === 0) return 'the root is not the first record'
    if (path !== '' && nodes.get(parentPath(path))?.f !== 'node') return `${where}: its parent is missing or a leaf`
    nodes.set(shared(path), node)
    return undefined
  }

  finish(): DecodedNodes {
    return this.nodes.size === 0 ? fail('no root node') : { ok: true, nodes: this.nodes }
  }
}

function decodeBodyV1(body: Uint8Array): DecodedNodes {
  const reader = new FieldReader(body)
  const collector = new NodeCollector()
  while (reader.at < body.length) {
    const start = reader.at
    const read = readNode(reader, true)
    if (read === undefined) return fail(`malformed record at body byte ${start}`)
    if ('error' in read) return fail(`${pathToUri(read.path)}: ${read.error}`)
    const problem = collector.add(read.path, read.node)
    if (problem !== undefined) return fail(problem)
  }
  return collector.finish()
}

/** The nodes of the store's `tree` namespace (path → `encodeNode`), refused with a one-line reason unless whole. */
export function decodeNodeEntries(entries: Iterable<[string, Uint8Array]>): DecodedNodes {
  const collector = new NodeCollector()
  for (const [path, bytes] of entries) {
    const reader = new FieldReader(bytes)
    const read = readNode(reader, false)
    if (read === undefined || reader.at !== bytes.length) return fail(`${pathToUri(path)}: malformed node`)
    if ('error' in read) return fail(`${pathToUri(path)}: ${read.error}`)
    const problem = collector.add(path, read.node)
    if (problem !== undefined) return fail(problem)
  }
  return collector.finish()
}

function fail(error: string): DecodedNodes {
  return { ok: false, error }
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest()
}
