/**
 * The rules a DM account (`./DMAcc/<x>`, DMAcc MO `org.openmobilealliance/1.0/w7`, DM StdObj 1.2, 5.3) must
 * meet after every commit that touches it and after a restore. Each failure names the tree path it is about.
 */
import { textOf } from './formats.ts'
import { childPath, type NodeView } from './node.ts'

export const DMACC = 'DMAcc'

/** `AAuthType` values of the DMAcc MO (DM StdObj 1.2; BASIC = syncml:auth-basic, DIGEST = syncml:auth-md5). */
const AAUTH_TYPES = 'HTTP-BASIC HTTP-DIGEST BASIC DIGEST HMAC X509 SECURID SAFEWORD DIGIPASS TRANSPORT'.split(' ')
const AAUTH_LEVELS = ['CLCRED', 'SRVCRED', 'OBEX', 'HTTP']
/** DM StdObj 1.2: with AAuthLevel HTTP "only HTTP-BASIC, HTTP-DIGEST and TRANSPORT are possible AAuthTypes". */
const HTTP_LEVEL_TYPES = ['HTTP-BASIC', 'HTTP-DIGEST', 'TRANSPORT']
const ADDR_TYPES = ['URI', 'IPv4', 'IPv6']
/** Ext/GwMO/Role: how the wire contract (binding §1) tells a DM Gateway's account from a DM Server's. */
const ROLES = ['gateway', 'server']
/** Ext/GwmoAgent/Binding (binding.md §10): `http` reaches the party over HTTP(S); `mqtt`, the default, as §2 says. */
const BINDINGS = ['mqtt', 'http']

/** Records a broken rule of one account: `rel` is the path below the account (`''` for the account itself). */
type Problem = (rel: string, text: string) => void

const ACCOUNT_PREFIX = DMACC + '/'

/** The account (`<x>`) a path lies in: `DMAcc/<x>` itself or a node below it; undefined anywhere else. */
export function accountOf(path: string): string | undefined {
  if (!path.startsWith(ACCOUNT_PREFIX)) return undefined
  const slash = path.indexOf('/', ACCOUNT_PREFIX.length)
  return path.slice(ACCOUNT_PREFIX.length, slash < 0 ? undefined : slash)
}

/** Whether `path` is an account's own node, `DMAcc/<x>`. */
export function isAccountNode(path: string): boolean {
  return path.startsWith(ACCOUNT_PREFIX) && path.indexOf('/', ACCOUNT_PREFIX.length) < 0
}

/** The account names (`<x>`) that a set of changed paths touches. */
export function touchedAccounts(paths: Iterable<string>): Set<string> {
  const touched = new Set<string>()
  for (const path of paths) {
    const account = accountOf(path)
    if (account !== undefined) touched.add(account)
  }
  return touched
}

/** A leaf's data as text, or undefined when there is no such leaf. */
export function leafText(view: NodeView, path: string): string | undefined {
  const node = view.node(path)
  return node === undefined || node.f === 'node' ? undefined : textOf(node.d) ?? ''
}

/**
 * Checks the named accounts (those that still exist) and gives one message per broken rule. Only interior
 * nodes have children, so the lists below need no check of the node they are read from.
 */
export function validateAccounts(view: NodeView, names: Iterable<string>): string[] {
  const messages: string[] = []
  for (const x of names) {
    const base = childPath(DMACC, x)
    const account = view.node(base)
    if (account === undefined) continue
    const problem: Problem = (rel, text) => messages.push(`./${base}${rel && '/' + rel}: ${text}`)
    if (account.f !== 'node') {
      problem('', 'an account must be an interior node')
      continue
    }
    const text = (rel: string) => leafText(view, `${base}/${rel}`)
    const appId = text('AppID')
    if (appId === undefined) problem('AppID', 'missing')
    else if (appId !== 'w7') problem('AppID', `must be w7, not '${appId}'`)

    const serverId = text('ServerID')
    if (!serverId) problem('ServerID', 'missing')
    else {
      const other = view.childNames(DMACC).find((y) => y !== x && leafText(view, `${DMACC}/${y}/ServerID`) === serverId)
      if (other !== undefined) problem('ServerID', `'${serverId}' is already the ServerID of ./DMAcc/${other}`)
    }

    checkAddresses(view, base, problem)

    const pref = text('AAuthPref')
    if (pref !== undefined && !AAUTH_TYPES.includes(pref)) problem('AAuthPref', `'${pref}' is not an AAuthType`)

    checkAuths(view, base, problem)

    const role = text('Ext/GwMO/Role')
    if (role !== undefined) oneOf(problem, 'Ext/GwMO/Role', ROLES, role)

    checkAgentExt(view, base, problem)
  }
  return messages
}

/** Every account in the view, validated (the check a restore makes). */
export function validateAllAccounts(view: NodeView): string[] {
  return validateAccounts(view, view.childNames(DMACC))
}

/** A problem unless `value` is one of `allowed`: "must be A, B or C, not 'value'". */
function oneOf(problem: Problem, rel: string, allowed: string[], value: string | undefined): void {
  if (value !== undefined && allowed.includes(value)) return
  problem(rel, `must be ${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}, not '${value ?? ''}'`)
}

function checkAddresses(view: NodeView, base: string, problem: Problem): void {
  const entries = view.childNames(base + '/AppAddr')
  if (entries.length === 0) return problem('AppAddr', 'no Addr')
  for (const y of entries) {
    const entry = `AppAddr/${y}/`
    const text = (rel: string) => leafText(view, `${base}/${entry}${rel}`)
    if (!text('Addr')) problem(entry + 'Addr', 'missing')
    const addrType = text('AddrType')
    if (addrType !== undefined) oneOf(problem, entry + 'AddrType', ADDR_TYPES, addrType)
    for (const z of view.childNames(`${base}/${entry}Port`)) {
      const nbr = text(`Port/${z}/PortNbr`)
      if (nbr === undefined || !/^\d{1,5}$/.test(nbr) || Number(nbr) > 65535) {
        problem(`${entry}Port/${z}/PortNbr`, `must be a port number, not '${nbr ?? ''}'`)
      }
    }
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/
const PEM_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+-----END [A-Z ]*PRIVATE KEY-----/

/** `Ext/GwmoAgent/*` (binding.md §10): how the party is reached, how often, and the HTTPS material. */
function checkAgentExt(view: NodeView, base: string, problem: Problem): void {
  const text = (rel: string) => leafText(view, `${base}/Ext/GwmoAgent/${rel}`)
  const binding = text('Binding')
  if (binding !== undefined) oneOf(problem, 'Ext/GwmoAgent/Binding', BINDINGS, binding)
  if (binding === 'http') {
    const addrs = view.childNames(base + '/AppAddr').map((y) => leafText(view, `${base}/AppAddr/${y}/Addr`) ?? '')
    if (!addrs.some((addr) => /^https?:\/\/[^/?#]+/i.test(addr))) problem('AppAddr', 'Binding http needs an http:// or https:// Addr')
  }
  const poll = text('PollSeconds')
  if (poll !== undefined && !/^\d{1,9}$/.test(poll)) problem('Ext/GwmoAgent/PollSeconds', `must be a number of seconds, not '${poll}'`)
  const encoding = text('Encoding')
  if (encoding !== undefined) oneOf(problem, 'Ext/GwmoAgent/Encoding', ['xml', 'wbxml'], encoding)
  for (const leaf of ['CA', 'ClientCert']) {
    const pem = text(leaf)
    if (pem !== undefined && !PEM_CERTIFICATE.test(pem)) problem(`Ext/GwmoAgent/${leaf}`, 'must be a PEM certificate')
  }
  const key = text('ClientKey')
  if (key !== undefined && !PEM_KEY.test(key)) problem('Ext/GwmoAgent/ClientKey', 'must be a PEM private key')
  if ((key === undefined) !== (text('ClientCert') === undefined)) problem('Ext/GwmoAgent', 'ClientCert and ClientKey go together')
}

function checkAuths(view: NodeView, base: string, problem: Problem): void {
  for (const y of view.childNames(base + '/AppAuth')) {
    const entry = `AppAuth/${y}/`
    const level = leafText(view, `${base}/${entry}AAuthLevel`)
    oneOf(problem, entry + 'AAuthLevel', AAUTH_LEVELS, level)
    const type = leafText(view, `${base}/${entry}AAuthType`)
    if (type === undefined || !AAUTH_TYPES.includes(type)) problem(entry + 'AAuthType', `'${type ?? ''}' is not an AAuthType`)
    else if (level === 'HTTP' && !HTTP_LEVEL_TYPES.includes(type)) problem(entry + 'AAuthType', `'${type}' is not an HTTP-level AAuthType`)
  }
}
