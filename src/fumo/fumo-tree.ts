/**
 * The FUMO object in the tree (binding.md §9, FUMO 1.0 §10): `./FUMO/<x>` and its nodes, made by the device at
 * every start where missing, its ACL the configuration's, and `State` written by the device alone.
 */
import type { ManagementTree } from '../tree/index.ts'
import type { NodeValue } from '../tree/types.ts'

export const FUMO_TYPE = 'urn:oma:mo:oma-fumo:1.0'

/**
 * FUMO 1.0 §10.2, the values of `State` (plain numbers where used, named there): 10 Idle/Start, 20 Download
 * Failed, 30 Download Progressing, 40 Download Complete, 50 Ready to Update, 60 Update Progressing, 70 Update
 * Failed Have Data, 80 Update Failed No Data, 90 Update Successful Have Data, 100 Update Successful No Data.
 */

/** The operations a server Execs, by node name, and the Meta/Type of the alert that reports each one's end. */
export const FUMO_OPERATIONS = Object.freeze({
  Download: 'org.openmobilealliance.dm.firmwareupdate.download',
  Update: 'org.openmobilealliance.dm.firmwareupdate.update',
  DownloadAndUpdate: 'org.openmobilealliance.dm.firmwareupdate.downloadandupdate',
} as const)

export type FumoOperationName = keyof typeof FUMO_OPERATIONS

/** Every node of the object below `./FUMO/<x>`, parents first. */
const NODES: Array<[string, NodeValue]> = [
  ['PkgName', { format: 'chr', data: '' }],
  ['PkgVersion', { format: 'chr', data: '' }],
  ['Download', { format: 'node' }],
  ['Download/PkgURL', { format: 'chr', data: '' }],
  ['Update', { format: 'node' }],
  ['Update/PkgData', { format: 'b64', data: new Uint8Array(0) }],
  ['DownloadAndUpdate', { format: 'node' }],
  ['DownloadAndUpdate/PkgURL', { format: 'chr', data: '' }],
  ['State', { format: 'int', data: '10' }], // Idle/Start
  ['Ext', { format: 'node' }],
  ['Ext/PkgSHA256', { format: 'chr', data: '' }],
]

/**
 * Makes the object's missing nodes and sets its ACL (the configuration's; `State` is readable by any server and
 * written by none), in one commit. The error names the node that could not be made.
 */
export function ensureFumoNodes(tree: ManagementTree, root: string, acl: string): { ok: true } | { ok: false; error: string } {
  const tx = tree.begin()
  const put = (uri: string, value: NodeValue): number => (tx.get(uri, 'device').status === 404 ? tx.add(uri, value, 'device') : 200)
  const steps: Array<[string, () => number]> = [
    ['./FUMO', () => put('./FUMO', { format: 'node' })],
    [root, () => put(root, { format: 'node', type: FUMO_TYPE })],
    ...NODES.map(([name, value]): [string, () => number] => [`${root}/${name}`, () => put(`${root}/${name}`, value)]),
    ['fumo.acl', () => tx.replace(`${root}?prop=ACL`, { format: 'chr', data: acl }, 'device')],
    [`${root}/State?prop=ACL`, () => tx.replace(`${root}/State?prop=ACL`, { format: 'chr', data: 'Get=*' }, 'device')],
  ]
  for (const [uri, step] of steps) {
    const status = step()
    if (status !== 200) {
      tx.rollback()
      return { ok: false, error: `${uri}: cannot be made (${status})` }
    }
  }
  const committed = tx.commit()
  return committed.ok ? { ok: true } : { ok: false, error: committed.failure.messages.join('; ') }
}

/** A leaf's value as text ('' when absent); bytes as UTF-8. */
export function leafText(read: (uri: string) => NodeValue | undefined, uri: string): string {
  const data = read(uri)?.data
  return data === undefined ? '' : typeof data === 'string' ? data : Buffer.from(data).toString('utf8')
}

/** Writes leaves as the device in one commit (told to the store, made durable by the next commit of the store). */
export function writeLeaves(tree: ManagementTree, values: Record<string, NodeValue>): boolean {
  const tx = tree.begin()
  for (const [uri, value] of Object.entries(values)) {
    if (tx.replace(uri, value, 'device') !== 200) {
      tx.rollback()
      return false
    }
  }
  return tx.commit().ok
}
