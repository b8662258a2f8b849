import type { Alert, Chal, Command, Item, ItemCommand, Results, Status } from '../codec/syncml-model.ts'

/**
 * The body of the message we are building in answer to one inbound message: Statuses, Results and our own
 * commands in the order they were produced. CmdIDs are given when the message is assembled (`assignCmdIds`),
 * so a scope can be built, reordered or dropped (Atomic rollback) before anything is numbered.
 */
export type ReplyEntry =
  | { kind: 'status'; status: Status; /** a tree-changing command that succeeded (its 200 becomes 500 if the commit fails) */ write: boolean }
  | { kind: 'results'; results: Results }
  | { kind: 'command'; command: Alert | ItemCommand; /** the persisted Generic Alert it carries, matched to the party's Status */ alertId?: string }

export interface StatusOptions {
  targetRef?: string
  sourceRef?: string
  chal?: Chal
  items?: Item[]
  /** Marks a successful tree change (binding.md §3, durability and validation). */
  write?: boolean
}

/** A 2xx SyncML status code: the command succeeded. */
export function isSuccess(code: number): boolean {
  return code >= 200 && code <= 299
}

export class ReplyBuilder {
  readonly entries: ReplyEntry[] = []
  /** Statuses produced with a code other than 2xx, counted even when NoResp keeps them out of the reply. */
  failures = 0

  /** @param msgRef the MsgID of the inbound message being answered */
  constructor(readonly msgRef: string) {}

  /** A Status for a command of the inbound message (OMA DM RepPro 1.2, 6.6.16); NoResp commands get none. */
  status(cmd: Pick<Command, 'kind' | 'cmdId' | 'noResp'> & { name?: string }, code: number, options: StatusOptions = {}): Status | undefined {
    const ok = isSuccess(code)
    if (!ok) this.failures += 1
    if (cmd.noResp) return undefined
    const status = makeStatus(this.msgRef, cmd.cmdId, cmd.kind === 'Unknown' ? (cmd.name ?? 'Unknown') : cmd.kind, code, options)
    this.entries.push({ kind: 'status', status, write: options.write === true && ok })
    return status
  }

  results(results: Omit<Results, 'kind' | 'cmdId' | 'msgRef'>): void {
    this.entries.push({ kind: 'results', results: { kind: 'Results', cmdId: '', msgRef: this.msgRef, ...results } })
  }

  command(command: Alert | ItemCommand, alertId?: string): void {
    this.entries.push({ kind: 'command', command, alertId })
  }

  /** A child builder for the commands inside Atomic or Sequence; its entries are adopted (or changed) after. */
  scope(): ReplyBuilder {
    return new ReplyBuilder(this.msgRef)
  }

  adopt(entries: ReplyEntry[]): void {
    this.entries.push(...entries)
  }

  /**
   * A container (Atomic, Sequence) whose commands ran in `scope`: its 200, a tree change when one inside changed
   * the tree, then what its commands produced.
   */
  containerDone(cmd: Command, scope: ReplyBuilder): void {
    this.status(cmd, 200, { write: scope.entries.some((e) => e.kind === 'status' && e.write) })
    this.adopt(scope.entries)
    this.failures += scope.failures
  }

  /** True when nothing but Statuses was produced. */
  get onlyStatuses(): boolean {
    return this.entries.every((e) => e.kind === 'status')
  }
}

export function makeStatus(msgRef: string, cmdRef: string, cmd: string, code: number, options: StatusOptions = {}): Status {
  const status: Status = {
    kind: 'Status',
    cmdId: '',
    msgRef,
    cmdRef,
    cmd,
    targetRefs: listOf(options.targetRef),
    sourceRefs: listOf(options.sourceRef),
    data: String(code),
    items: options.items ?? [],
  }
  if (options.chal !== undefined) status.chal = options.chal
  return status
}

function listOf(ref: string | undefined): string[] {
  return ref === undefined ? [] : [ref]
}

/**
 * Numbers the commands of an assembled body from 1 (CmdID is unique within a message: OMA DM RepPro 1.2,
 * 6.5.4) and returns the body; each Generic Alert's CmdID is reported so its Status can be matched later.
 */
export function assignCmdIds(entries: ReplyEntry[], onAlert: (cmdId: string, alertId: string) => void): Command[] {
  const body: Command[] = []
  let next = 1
  for (const entry of entries) {
    const cmdId = String(next++)
    if (entry.kind === 'status') body.push({ ...entry.status, cmdId })
    else if (entry.kind === 'results') body.push({ ...entry.results, cmdId })
    else {
      body.push({ ...entry.command, cmdId })
      if (entry.alertId !== undefined) onAlert(cmdId, entry.alertId)
    }
  }
  return body
}
