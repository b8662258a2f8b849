/**
 * A test CA made by `openssl`, with a server certificate for `localhost` and `127.0.0.1` (`server.pem`,
 * `server.key`) and a client certificate (`client.pem`, `client.key`), in a directory of the test's own.
 */
import { execFileSync } from 'node:child_process'
import { accessSync, constants, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const OPENSSL = '/usr/bin/openssl'

export function requireExecutable(path: string, install: string): void {
  try {
    accessSync(path, constants.X_OK)
  } catch {
    throw new Error(`${path.split('/').pop()} not found: apt-get install ${install}`)
  }
}

export function makeCertificates(dir: string): void {
  requireExecutable(OPENSSL, 'openssl')
  const openssl = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' })
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  writeFileSync(join(dir, 'ca.cnf'), [
    '[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', 'CN = gwmo-agent test CA',
    '[v3_ca]', 'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier = hash', '',
  ].join('\n'))
  openssl('req', '-x509', '-config', 'ca.cnf', '-extensions', 'v3_ca', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2')
  const leaf = (name: string, extensions: string[], serial: string) => {
    writeFileSync(join(dir, `${name}.ext`), ['basicConstraints = CA:FALSE', ...extensions, ''].join('\n'))
    openssl('req', '-new', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? 'localhost' : 'gwmo-agent test device'}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial,
      '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`)
  }
  leaf('server', ['subjectAltName = DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage = serverAuth'], '2')
  leaf('client', ['extendedKeyUsage = clientAuth'], '3')
}
