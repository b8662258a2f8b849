/**
 * `gwmo-agent ddf --config FILE` (binding.md §8): the device's tree described in OMA DM DDF 1.2 (`MgmtTree`,
 * DM TND 1.2, 8), for an integrator to hand to a DM Server. What it describes is the tree a first start of this
 * configuration serves (the standard objects and what the factory document adds, built in memory: nothing is
 * written), every configured object mounted on it, the FUMO object when the configuration has one
 * (binding.md §9), and the placeholder of an account a server adds (`./DMAcc/<x>`, with the whole DMAcc MO).
 *
 * `AccessType` is what the node supports, as the tree's rules give it (a secret has no Get, a permanent node no
 * Replace or Delete); its ACL says who may. A node no command deletes is `One`/`Permanent`, any other
 * `ZeroOrOne`/`Dynamic`, a placeholder `ZeroOrMore`/`Dynamic`.
 */
import { parseArgs } from 'node:util'
import { loadConfigFile } from '../config.ts'
import { DEFAULT_LEAF_TYPE } from '../tree/formats.ts'
import { parseUri, type ManagementTree, type NodeFormat, type ParsedUri } from '../tree/index.ts'
import { childPath } from '../tree/node.ts'
import { isPermanent, isSecret } from '../tree/operations.ts'
import { describeDevice, readDevice } from './device-info.ts'
import { buildFactoryTree, readFactoryDocument } from './factory.ts'

export const DDF_USAGE = 'gwmo-agent ddf --config FILE'

/** AccessType's commands in the DTD's order, each with the letter the tables below use. */
const ACCESS = { A: 'Add', D: 'Delete', E: 'Exec', G: 'Get', R: 'Replace' } as const
type Access = keyof typeof ACCESS

/** Where a server names the nodes (`<x>`): the children of these are one placeholder (`*` in a pattern). */
const PLACEHOLDER_PARENTS = new Set(['DMAcc', 'DMAcc/*/AppAddr', 'DMAcc/*/AppAddr/*/Port', 'DMAcc/*/AppAuth', 'DMAcc/*/ToConRef'])

/**
 * `pattern format access [DDF name]` of the nodes a fresh tree does not hold: an account, which a server may
 * create (DMAcc MO w7, DM StdObj 1.2, 5.3, with the leaves binding.md §1 and §10 add under Ext), and the FUMO
 * object the agent makes at start when the configuration has one (binding.md §9, src/fumo/fumo-tree.ts), `*`
 * its name there; State is the device's to write. What the tree holds wins over these.
 */
const SCHEMA = `DMAcc node AG
DMAcc/* node ADG
${'AppID ServerID Name PrefConRef ToConRef/*/ConRef AppAddr/*/Addr AppAddr/*/AddrType AppAddr/*/Port/*/PortNbr AAuthPref AppAuth/*/AAuthLevel AppAuth/*/AAuthType AppAuth/*/AAuthName Ext/GwMO/Role Ext/GwmoAgent/Binding Ext/GwmoAgent/PollSeconds Ext/GwmoAgent/Encoding Ext/GwmoAgent/CA Ext/GwmoAgent/ClientCert'
  .split(' ').map((leaf) => `DMAcc/*/${leaf} chr ADGR`).join('\n')}
DMAcc/*/AppAuth/*/AAuthSecret chr ADR
DMAcc/*/AppAuth/*/AAuthData bin ADR
DMAcc/*/Ext/GwmoAgent/ClientKey chr ADR
FUMO node G
FUMO/* node G urn:oma:mo:oma-fumo:1.0
FUMO/*/PkgName chr GR
FUMO/*/PkgVersion chr GR
FUMO/*/Download node EG
FUMO/*/Download/PkgURL chr GR
FUMO/*/Update node EG
FUMO/*/Update/PkgData b64 GR
FUMO/*/DownloadAndUpdate node EG
FUMO/*/DownloadAndUpdate/PkgURL chr GR
FUMO/*/State int G
FUMO/*/Ext node G
FUMO/*/Ext/PkgSHA256 chr GR`

/** One described node; `name` '' is a placeholder. */
interface Described {
  name: string
  format: NodeFormat
  type: string | undefined
  access: Set<Access>
  kids: Map<string, Described>
}

/** The description of a tree: its nodes by pattern (a placeholder's segment is `*`), each under its parent. */
export class Description {
  readonly root: Described = { name: '', format: 'node', type: undefined, access: new Set(), kids: new Map() }
  readonly #byPattern = new Map<string, Described>([['', this.root]])

  /**
   * Describes the node at `pattern` unless it is already; a parent not described yet is an interior node a
   * server may add and delete.
   */
  add(pattern: string, format: NodeFormat, type: string | undefined, access: Iterable<Access>): Described {
    const known = this.#byPattern.get(pattern)
    if (known !== undefined) return known
    const slash = pattern.lastIndexOf('/')
    const parent = slash < 0 ? this.root : this.add(pattern.slice(0, slash), 'node', undefined, 'ADG' as Iterable<Access>)
    const name = pattern.slice(slash + 1)
    const node: Described = { name: name === '*' ? '' : name, format, type, access: new Set(access), kids: new Map() }
    parent.kids.set(name, node)
    this.#byPattern.set(pattern, node)
    return node
  }

  /**
   * Every node of the tree (the root aside), with what the tree's rules let a command do there, or what `fixed`
   * says for its path (a configured object's).
   */
  addTree(tree: ManagementTree, fixed: ReadonlyMap<string, string>): void {
    const nodes = tree.committed
    const visit = (path: string, pattern: string): void => {
      for (const name of nodes.childNames(path)) {
        const at = childPath(path, name)
        const described = pattern === '' ? name : `${pattern}/${PLACEHOLDER_PARENTS.has(pattern) ? '*' : name}`
        const node = nodes.node(at)!
        const access: Access[] = []
        const interior = node.f === 'node'
        // Permanent nodes (DM StdObj 1.2) take no Add but where a server adds accounts and Inbox objects.
        if (!isPermanent(at) || at === 'DMAcc' || at === 'Inbox') access.push('A')
        if (!isPermanent(at)) access.push('D')
        if (at !== 'Inbox' && !isSecret(at)) access.push('G')
        if (!interior && !isPermanent(at)) access.push('R')
        this.add(described, node.f, node.t, (fixed.get(at) as Iterable<Access> | undefined) ?? access)
        visit(at, described)
      }
    }
    visit('', '')
  }

  /** The nodes of `SCHEMA` the tree did not already describe; FUMO's named `fumo`, or left out without it. */
  addSchema(fumo: string | undefined): void {
    for (const line of SCHEMA.split('\n')) {
      const [pattern, format, access, type] = line.split(' ') as [string, NodeFormat, string, string?]
      if (!pattern.startsWith('FUMO')) this.add(pattern, format, type, access as Iterable<Access>)
      else if (fumo !== undefined) this.add(pattern.replace('*', fumo), format, type, access as Iterable<Access>)
    }
  }

  /** The `MgmtTree` document: a line per node's start, its properties and its end, indented by depth. */
  toXml(man: string, mod: string): string {
    const lines = [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<!DOCTYPE MgmtTree PUBLIC "-//OMA//DTD-DM-DDF 1.2//EN" "http://www.openmobilealliance.org/tech/DTD/DM_DDF-V1_2.dtd">',
      `<MgmtTree>${tag('VerDTD', '1.2')}${tag('Man', escape(man))}${tag('Mod', escape(mod))}`,
    ]
    const write = (node: Described, indent: string): void => {
      const fixed = !node.access.has('D')
      const placeholder = node.name === ''
      const access = (Object.keys(ACCESS) as Access[]).filter((a) => node.access.has(a)).map((a) => tag(ACCESS[a])).join('')
      lines.push(
        `${indent}<Node>${tag('NodeName', escape(node.name))}${indent === ' ' ? tag('Path', '.') : ''}`,
        `${indent} ${tag('DFProperties', tag('AccessType', access) + tag('DFFormat', tag(node.format)) +
          tag('Occurrence', tag(placeholder ? 'ZeroOrMore' : fixed ? 'One' : 'ZeroOrOne')) + tag('Scope', tag(fixed && !placeholder ? 'Permanent' : 'Dynamic')) +
          (placeholder ? tag('DFTitle', 'named by the server') : '') +
          tag('DFType', node.format === 'node' ? tag('DDFName', escape(node.type ?? '')) : tag('MIME', escape(node.type ?? DEFAULT_LEAF_TYPE))))}`,
      )
      for (const kid of node.kids.values()) write(kid, indent + ' ')
      lines.push(`${indent}</Node>`)
    }
    for (const top of this.root.kids.values()) write(top, ' ')
    lines.push('</MgmtTree>')
    return lines.join('\n')
  }
}

/** `<name>inner</name>`, or `<name/>` when there is nothing inside. */
const tag = (name: string, inner = ''): string => (inner === '' ? `<${name}/>` : `<${name}>${inner}</${name}>`)
const escape = (text: string): string => text.replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`)

export async function runDdfCli(
  io: { argv: string[]; env: Record<string, string | undefined>; stdout: (text: string) => void; stderr: (line: string) => void; version: string },
  exit: { ok: number; failure: number; usage: number },
): Promise<{ kind: 'exit'; code: number }> {
  const fail = (code: number, line: string) => {
    io.stderr(`gwmo-agent ddf: ${line}`)
    return { kind: 'exit' as const, code }
  }
  let values: { config?: string; help?: boolean }
  try {
    ;({ values } = parseArgs({ args: io.argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true }))
  } catch (error) {
    return fail(exit.usage, (error as Error).message)
  }
  if (values.help) {
    io.stdout(`usage: ${DDF_USAGE}\n\nPrints the device's management tree as an OMA DM DDF 1.2 description (MgmtTree).`)
    return { kind: 'exit', code: exit.ok }
  }
  if (values.config === undefined) return fail(exit.usage, '--config FILE is required')
  const loaded = await loadConfigFile(values.config, io.env)
  if (!loaded.ok) return fail(exit.usage, loaded.error)
  const config = loaded.config
  const document = await readFactoryDocument(config.factoryBootstrap)
  if (!document.ok) return fail(exit.failure, document.error)
  // The description a start gives (GWMO_SYSROOT: see cli.ts), for Man, and Ext/GwmoAgent/Version's node.
  const sysroot = io.env.GWMO_SYSROOT
  const description = describeDevice(config.devInfo, await readDevice({ version: io.version, ...(sysroot && { root: sysroot }) }))
  const built = buildFactoryTree(config, document.document, description)
  if ('error' in built) return fail(exit.failure, built.error)
  // binding.md §8: each object is mounted as the agent mounts it; a server reads it, writes it when it has a value or
  // a write, and runs it when it has an exec. Recreated at every start, no server adds or deletes it.
  const fixed = new Map<string, string>()
  for (const spec of config.objects) {
    const { path, format, type, acl, value, write, exec } = spec
    const mounted = built.tree.mount(path, { format, ...(type !== undefined && { type }), ...(acl !== undefined && { acl }), ...(value !== undefined && { value }) }, {})
    if (!mounted.ok) return fail(exit.usage, `objects: ${mounted.error}`)
    fixed.set((parseUri(path) as ParsedUri).path, `G${value !== undefined || write ? 'R' : ''}${exec ? 'E' : ''}`)
  }
  const ddf = new Description()
  ddf.addTree(built.tree, fixed)
  ddf.addSchema(config.fumo?.name)
  io.stdout(ddf.toXml(description.man ?? 'unknown', config.devInfo.mod))
  return { kind: 'exit', code: exit.ok }
}
