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
  const out = new ByteWriter()
  for (const [path, node] of nodes) {
    const code = FORMATS.indexOf(node.f)
    let flags = 0
    if (node.t !== undefined) flags |= FLAG_TYPE
    if (node.a !== undefined) flags |= FLAG_ACL
    if (typeof node.d === 'string') flags |= FLAG_TEXT
    else if (node.d !== undefined) flags |= FLAG_BYTES
    out.byte(code)
    out.byte(flags)
    out.text(path)
    if (node.t !== undefined) out.text(node.t)
    if (node.a !== undefined) out.text(node.a)
    if (typeof node.d === 'string') out.text(node.d)
    else if (node.d !== undefined) out.bytes(node.d)
  }
  const body = out.finish()
  const file = new Uint8Array(HEADER_LENGTH + body.length)
  const header = new DataView(file.buffer)
  for (let i = 0; i < MAGIC.length; i++) file[i] = MAGIC.charCodeAt(i)
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
  for (let i = 0; i < MAGIC.length; i++) {
    if (file[i] !== MAGIC.charCodeAt(i)) return fail('not a tree file (bad magic)')
  }
  const header = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const version = header.getUint16(8)
  if (version > TREE_FILE_VERSION) return fail(`version ${version} is newer than this agent reads (${TREE_FILE_VERSION})`)
  if (version !== TREE_FILE_VERSION) return fail(`unknown version ${version}`)
  const length = header.getUint32(10)
  if (file.length - HEADER_LENGTH !== length) {
    return fail(`truncated or padded: body is ${file.length - HEADER_LENGTH} bytes, header says ${length}`)
  }
  const body = file.subarray(HEADER_LENGTH)
  const digest = sha256(body)
  for (let i = 0; i < 32; i++) if (digest[i] !== file[14 + i]) return fail('checksum mismatch: the file is corrupt')
  return decodeBodyV1(body)
}

function decodeBodyV1(body: Uint8Array): DecodedNodes {
  const reader = new ByteReader(body)
  const nodes = new Map<string, TreeNode>()
  while (!reader.done()) {
    const at = reader.offset
    const format = FORMATS[reader.byte()]
    const flags = reader.byte()
    const path = reader.text()
    const type = flags & FLAG_TYPE ? reader.text() : undefined
    const acl = flags & FLAG_ACL ? reader.text() : undefined
    const data = flags & FLAG_TEXT ? reader.text() : flags & FLAG_BYTES ? reader.bytes() : undefined
    if (reader.failed || format === undefined || flags > 15) return fail(`malformed record at body byte ${at}`)
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

function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

class ByteWriter {
  private buf = new Uint8Array(1024)
  private len = 0
  private readonly encoder = new TextEncoder()

  byte(b: number): void {
    this.reserve(1)
    this.buf[this.len++] = b
  }

  bytes(data: Uint8Array): void {
    this.varint(data.length)
    this.reserve(data.length)
    this.buf.set(data, this.len)
    this.len += data.length
  }

  text(s: string): void {
    this.bytes(this.encoder.encode(s))
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len)
  }

  private varint(n: number): void {
    while (n >= 0x80) {
      this.byte((n & 0x7f) | 0x80)
      n = Math.floor(n / 128)
    }
    this.byte(n)
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n))
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
  }
}

class ByteReader {
  offset = 0
  failed = false
  private readonly decoder = new TextDecoder('utf-8', { fatal: true })

  constructor(private readonly buf: Uint8Array) {}

  done(): boolean {
    return this.failed || this.offset >= this.buf.length
  }

  byte(): number {
    if (this.offset >= this.buf.length) {
      this.failed = true
      return 0
    }
    return this.buf[this.offset++]!
  }

  bytes(): Uint8Array {
    const n = this.varint()
    if (this.failed || this.offset + n > this.buf.length) {
      this.failed = true
      return new Uint8Array(0)
    }
    const out = this.buf.slice(this.offset, this.offset + n)
    this.offset += n
    return out
  }

  text(): string {
    const raw = this.bytes()
    if (this.failed) return ''
    try {
      return this.decoder.decode(raw)
    } catch {
      this.failed = true
      return ''
    }
  }

  private varint(): number {
    let n = 0
    let scale = 1
    for (let i = 0; i < 5; i++) {
      const b = this.byte()
      n += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return n
      scale *= 128
    }
    this.failed = true
    return 0
  }
}
