/**
 * The agent as the bench runs it: a configuration in a temporary folder whose factory bootstrap gives the
 * device one DM Server and one DM Gateway account (the parties of the GwMO tests), DIGEST both ways, unless the
 * figure names its own parties.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { factoryBootstrapXml, GATEWAY, SERVER_A, type PartySpec } from '../../test/fixtures/gwmo/parties.ts'

export const BENCH_PARTIES: { server: PartySpec; gateway: PartySpec } = { server: SERVER_A, gateway: GATEWAY }

export interface AgentSetup {
  dir: string
  configPath: string
  deviceId: string
  statusTopic: string
}

export function agentSetup(brokerUrl: string, deviceId: string, extra: Record<string, unknown> = {}, parties: PartySpec[] = [SERVER_A, GATEWAY]): AgentSetup {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-bench-'))
  const factory = join(dir, 'factory.xml')
  writeFileSync(factory, factoryBootstrapXml(deviceId, parties))
  const config = {
    deviceId,
    broker: { url: brokerUrl },
    stateDir: join(dir, 'state'),
    factoryBootstrap: factory,
    logLevel: 'warn',
    ...extra,
  }
  const configPath = join(dir, 'config.json')
  writeFileSync(configPath, JSON.stringify(config))
  return { dir, configPath, deviceId, statusTopic: `omadm/v1/${encodeURIComponent(deviceId)}/status` }
}
