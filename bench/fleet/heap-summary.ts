/**
 * Where a process's heap goes, by constructor: a V8 heap snapshot read back and summed by node name (objects
 * by their constructor, everything else by its kind in parentheses). Two summaries subtract, so a fleet's
 * share is told apart from what the process held before it started.
 */
import { getHeapSnapshot } from 'node:v8'

export type HeapSummary = Map<string, { count: number; bytes: number }>

export async function heapByConstructor(): Promise<HeapSummary> {
  const chunks: string[] = []
  for await (const chunk of getHeapSnapshot()) chunks.push(typeof chunk === 'string' ? chunk : String(chunk))
  const snapshot = JSON.parse(chunks.join('')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }
    nodes: number[]
    strings: string[]
  }
  chunks.length = 0
  const fields = snapshot.snapshot.meta.node_fields
  const stride = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const types = snapshot.snapshot.meta.node_types[0]
  const out: HeapSummary = new Map()
  const { nodes, strings } = snapshot
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + typeAt]!]!
    const key = type === 'object' || type === 'closure' ? `${strings[nodes[i + nameAt]!]}${type === 'closure' ? ' (closure)' : ''}` : `(${type})`
    const entry = out.get(key) ?? { count: 0, bytes: 0 }
    entry.count++
    entry.bytes += nodes[i + sizeAt]!
    out.set(key, entry)
  }
  return out
}

/** `after − before`, largest first, per device. */
export function perDevice(before: HeapSummary, after: HeapSummary, devices: number, top = 15): Array<{ name: string; count: number; bytes: number }> {
  const rows: Array<{ name: string; count: number; bytes: number }> = []
  for (const [name, entry] of after) {
    const base = before.get(name) ?? { count: 0, bytes: 0 }
    rows.push({ name, count: (entry.count - base.count) / devices, bytes: (entry.bytes - base.bytes) / devices })
  }
  return rows.sort((a, b) => b.bytes - a.bytes).slice(0, top)
}
