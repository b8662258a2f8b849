/**
 * binding.md §6: "a crash never brings an older [nonce] back". The nonces the device hands out come from a
 * counter reserved ahead, so none is handed out twice; but the nonce a party must use next is written to the
 * tree lazily (the counter keeps it unique, not durable). After a crash the tree may hold an older nonce, one
 * the party already used, and a recorded message of that party would then authenticate again. So the agent
 * notes in its state that it runs, and a start that finds the note of a run that never stopped cleanly gives
 * every party a stored nonce that was never handed out: a party then needs one challenge (401 with a Chal).
 * Every DM Server is then out of step for its DM Notifications too (binding.md §6): their digests are made with
 * the nonce the server still holds, so the default nonce is tried for them until one verifies with the stored
 * nonce again.
 */
import { NONCE_BYTES } from '../auth/nonce.ts'
import { NotificationMemory } from '../gwmo/notification-memory.ts'
import type { Logger } from '../log.ts'
import type { AgentState } from '../session/agent-state.ts'
import { readAccounts, setNonce } from '../tree/accounts.ts'
import type { TreeOps } from '../tree/types.ts'

const RUNNING_SLOT = 'runtime.running'

/**
 * Called once the tree and the state are open, before any message is handled: replaces the stored nonces if
 * the last run ended uncleanly, makes that durable, then notes that this run has begun.
 */
export async function beginRun(
  tree: TreeOps & { flush(): Promise<void> },
  state: AgentState,
  random: (n: number) => Uint8Array,
  logger: Logger,
): Promise<void> {
  if (state.slot(RUNNING_SLOT) === true) {
    let parties = 0
    const servers: string[] = []
    for (const { serverId, serverEntries, role } of readAccounts(tree)) {
      for (const entry of serverEntries) setNonce(tree, entry, random(NONCE_BYTES))
      if (serverEntries.length > 0) parties += 1
      if (role !== 'gateway') servers.push(serverId)
    }
    await tree.flush()
    // Saved below with the note of this run, before any notification is handled.
    new NotificationMemory(state, () => servers).markAllOutOfStep()
    logger.warn('the last run did not stop cleanly: parties will be challenged for a new nonce', { parties })
  }
  state.setSlot(RUNNING_SLOT, true)
  await state.save()
}

/** Called at a clean stop, once the tree is flushed: the next start trusts the stored nonces. */
export async function endRun(state: AgentState): Promise<void> {
  state.setSlot(RUNNING_SLOT, undefined)
  await state.save()
}
