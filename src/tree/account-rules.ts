/**
 * The rules a DM account (`./DMAcc/<x>`, DMAcc MO `org.openmobilealliance/1.0/w7`, DM StdObj 1.2, 5.3) must
 * meet after every commit that touches it and after a restore. Each failure names the tree path it is about.
 */
import { childPath, type NodeView } from './node.ts'

export const DMACC = 'DMAcc'

/** `AAuthType` values of the DMAcc MO (DM StdObj 1.2; BASIC = syncml:auth-basic, DIGEST = syncml:auth-md5). */
export const AAUTH_TYPES: ReadonlySet<string> = new Set([
  'HTTP-BASIC', 'HTTP-DIGEST', 'BASIC', 'DIGEST', 'HMAC', 'X509', 'SECURID', 'SAFEWORD', 'DIGIPASS', 'TRANSPORT',
])
export const AAUTH_LEVELS: ReadonlySet<string> = new Set(['CLCRED', 'SRVCRED', 'OBEX', 'HTTP'])
/** DM StdObj 1.2: with AAuthLevel HTTP "only HTTP-BASIC, HTTP-DIGEST and TRANSPORT are possible AAuthTypes". */
const HTTP_LEVEL_TYPES: ReadonlySet<string> = new Set(['HTTP-BASIC', 'HTTP-DIGEST', 'TRANSPORT'])
export const ADDR_TYPES: ReadonlySet<string> = new Set(['URI', 'IPv4', 'IPv6'])
/** Ext/GwMO/Role: how the wire contract (binding §1) tells a DM Gateway's account from a DM Server's. */
export const ROLES: ReadonlySet<string> = new Set(['gateway', 'server'])

/** The account names (`<x>`) that a set of changed paths touches. */
export function touchedAccounts(paths: Iterable<string>): Set<string> {
  const touched = new Set<string>()
  for (const path of paths) {
    if (!path.startsWith('DMAcc/')) continue
    const slash = path.indexOf('/', 6)
    touched.add(slash < 0 ? path.slice(6) : path.slice(6, slash))
  }
  return touched
}

/** A leaf's data as text, or undefined when there is no such leaf. */
export function leafText(view: NodeView, path: string): string | undefined {
  const node = view.node(path)
  if (node === undefined || node.f === 'node') return undefined
  const data = node.d
  if (data === undefined) return ''
  return typeof data === 'string' ? data : new TextDecoder().decode(data)
}

/** Checks the named accounts (those that still exist) and gives one message per broken rule. */
export function validateAccounts(view: NodeView, names: Iterable<string>): string[] {
  const messages: string[] = []
  let serverIds: Map<string, string> | undefined
  for (const x of names) {
    const base = childPath(DMACC, x)
    const account = view.node(base)
    if (account === undefined) continue
    const at = (rel: string) => './' + (rel === '' ? base : base + '/' + rel)
    if (account.f !== 'node') {
      messages.push(`${at('')}: an account must be an interior node`)
      continue
    }
    const appId = leafText(view, base + '/AppID')
    if (appId === undefined) messages.push(`${at('AppID')}: missing`)
    else if (appId !== 'w7') messages.push(`${at('AppID')}: must be w7, not '${appId}'`)

    const serverId = leafText(view, base + '/ServerID')
    if (serverId === undefined || serverId === '') messages.push(`${at('ServerID')}: missing`)
    else {
      serverIds ??= collectServerIds(view)
      const other = [...serverIds].find(([node, id]) => id === serverId && node !== x)
      if (other) messages.push(`${at('ServerID')}: '${serverId}' is already the ServerID of ./DMAcc/${other[0]}`)
    }

    checkAddresses(view, base, at, messages)

    const pref = leafText(view, base + '/AAuthPref')
    if (pref !== undefined && !AAUTH_TYPES.has(pref)) messages.push(`${at('AAuthPref')}: '${pref}' is not an AAuthType`)

    checkAuths(view, base, at, messages)

    const role = leafText(view, base + '/Ext/GwMO/Role')
    if (role !== undefined && !ROLES.has(role)) messages.push(`${at('Ext/GwMO/Role')}: must be gateway or server, not '${role}'`)
  }
  return messages
}

/** Every account in the view, validated (the check a restore makes). */
export function validateAllAccounts(view: NodeView): string[] {
  return view.node(DMACC) === undefined ? [] : validateAccounts(view, view.childNames(DMACC))
}

function collectServerIds(view: NodeView): Map<string, string> {
  const ids = new Map<string, string>()
  for (const x of view.childNames(DMACC)) {
    const id = leafText(view, childPath(DMACC, x) + '/ServerID')
    if (id !== undefined) ids.set(x, id)
  }
  return ids
}

function checkAddresses(view: NodeView, base: string, at: (rel: string) => string, messages: string[]): void {
  const appAddr = base + '/AppAddr'
  const entries = view.node(appAddr)?.f === 'node' ? view.childNames(appAddr) : []
  if (entries.length === 0) {
    messages.push(`${at('AppAddr')}: no Addr`)
    return
  }
  for (const y of entries) {
    const entry = `${appAddr}/${y}`
    const addr = leafText(view, entry + '/Addr')
    if (addr === undefined || addr === '') messages.push(`${at(`AppAddr/${y}/Addr`)}: missing`)
    const addrType = leafText(view, entry + '/AddrType')
    if (addrType !== undefined && !ADDR_TYPES.has(addrType)) {
      messages.push(`${at(`AppAddr/${y}/AddrType`)}: must be URI, IPv4 or IPv6, not '${addrType}'`)
    }
    const ports = entry + '/Port'
    if (view.node(ports)?.f !== 'node') continue
    for (const z of view.childNames(ports)) {
      const nbr = leafText(view, `${ports}/${z}/PortNbr`)
      if (nbr === undefined || !/^\d{1,5}$/.test(nbr) || Number(nbr) > 65535) {
        messages.push(`${at(`AppAddr/${y}/Port/${z}/PortNbr`)}: must be a port number, not '${nbr ?? ''}'`)
      }
    }
  }
}

function checkAuths(view: NodeView, base: string, at: (rel: string) => string, messages: string[]): void {
  const appAuth = base + '/AppAuth'
  if (view.node(appAuth)?.f !== 'node') return
  for (const y of view.childNames(appAuth)) {
    const entry = `${appAuth}/${y}`
    const level = leafText(view, entry + '/AAuthLevel')
    if (level === undefined || !AAUTH_LEVELS.has(level)) {
      messages.push(`${at(`AppAuth/${y}/AAuthLevel`)}: must be CLCRED, SRVCRED, OBEX or HTTP, not '${level ?? ''}'`)
    }
    const type = leafText(view, entry + '/AAuthType')
    if (type === undefined || !AAUTH_TYPES.has(type)) {
      messages.push(`${at(`AppAuth/${y}/AAuthType`)}: '${type ?? ''}' is not an AAuthType`)
    } else if (level === 'HTTP' && !HTTP_LEVEL_TYPES.has(type)) {
      messages.push(`${at(`AppAuth/${y}/AAuthType`)}: '${type}' is not an HTTP-level AAuthType`)
    }
  }
}
