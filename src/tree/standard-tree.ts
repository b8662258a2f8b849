/**
 * The standard objects every DM 1.2 device has (DM StdObj 1.2): DevInfo, DevDetail, an empty DMAcc and Inbox,
 * with ACLs that let any server read the device description and no server change it.
 */
import { ManagementTree, type TreeOptions } from './tree.ts'
import type { NodeValue } from './types.ts'

export interface StandardTreeOptions extends TreeOptions {
  devId: string
  man: string
  mod: string
  lang: string
  devTyp?: string
  fwV?: string
  swV?: string
  hwV?: string
  oem?: string
  /** `./DevDetail/URI` limits; 0 means none. Defaults: depth 16, total length 512, segment length 64. */
  maxDepth?: number
  maxTotLen?: number
  maxSegLen?: number
}

/** DDF names of the standard objects (DM StdObj 1.2). */
export const DEVINFO_TYPE = 'urn:oma:mo:oma-dm-devinfo:1.0'
export const DEVDETAIL_TYPE = 'urn:oma:mo:oma-dm-devdetail:1.0'
export const INBOX_TYPE = 'urn:oma:mo:oma-dm-inbox:1.0'

export function createStandardTree(options: StandardTreeOptions): ManagementTree {
  const tree = new ManagementTree(options)
  const tx = tree.begin()
  const node = (type?: string): NodeValue => (type === undefined ? { format: 'node' } : { format: 'node', type })
  const chr = (data: string): NodeValue => ({ format: 'chr', data })
  const entries: [string, NodeValue][] = [
    ['./DevInfo', node(DEVINFO_TYPE)],
    ['./DevInfo/DevId', chr(options.devId)],
    ['./DevInfo/Man', chr(options.man)],
    ['./DevInfo/Mod', chr(options.mod)],
    ['./DevInfo/DmV', chr('1.2')],
    ['./DevInfo/Lang', chr(options.lang)],
    ['./DevDetail', node(DEVDETAIL_TYPE)],
    ['./DevDetail/URI', node()],
    ['./DevDetail/URI/MaxDepth', chr(String(options.maxDepth ?? 16))],
    ['./DevDetail/URI/MaxTotLen', chr(String(options.maxTotLen ?? 512))],
    ['./DevDetail/URI/MaxSegLen', chr(String(options.maxSegLen ?? 64))],
    ['./DevDetail/DevTyp', chr(options.devTyp ?? 'device')],
    ['./DevDetail/OEM', chr(options.oem ?? options.man)],
    ['./DevDetail/FwV', chr(options.fwV ?? '')],
    ['./DevDetail/SwV', chr(options.swV ?? '')],
    ['./DevDetail/HwV', chr(options.hwV ?? '')],
    ['./DevDetail/LrgObj', { format: 'bool', data: 'false' }],
    ['./DMAcc', node()],
    ['./Inbox', node(INBOX_TYPE)],
  ]
  for (const [uri, value] of entries) tx.add(uri, value, 'device')
  // Any server reads the device description; none changes it. Any server may add an account (GwMO 1.0,
  // 8.4.1: a DM Server bootstraps the gateway's account) and gets rights on what it adds; ./Inbox is Add-only.
  tx.replace('./DevInfo?prop=ACL', chr('Get=*'), 'device')
  tx.replace('./DevDetail?prop=ACL', chr('Get=*'), 'device')
  tx.replace('./DMAcc?prop=ACL', chr('Add=*&Get=*'), 'device')
  tx.replace('./Inbox?prop=ACL', chr('Add=*'), 'device')
  tx.commit()
  return tree
}
