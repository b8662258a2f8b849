/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib and PNG), for the journal's records: it catches a torn or garbled
 * record, which is all a record's check has to do (the checkpoint, written rarely, has a SHA-256). `zlib.crc32`
 * only exists from Node 20.15 and not in every Bun, so the table is made here.
 */
const TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c
  }
  return table
})()

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
