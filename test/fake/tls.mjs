// A throwaway PKI for the https:// tests, made at test time with the `openssl` command (no key
// is ever committed): a CA, and a server certificate it signs for localhost, 127.0.0.1 and the
// made-up names the proxy test uses (*.hltest, which only the test proxy resolves).
//
//   import { makeTestPKI } from '../fake/tls.mjs';
//   const pki = makeTestPKI();          // null when openssl is missing (the test skips)
//   startFakeOpenAI({ tls: pki.server }); // {key, cert}: PEM text
//   gateway config: upstream.ca_file: pki.caFile
//   pki.cleanup()                        // removes the temp dir
//
// Throws when openssl is there but fails (the message has its stderr).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TEST_HOSTS = ['localhost', 'upstream.hltest', 'other.hltest'];

export function opensslMissing() {
  const r = spawnSync('openssl', ['version'], { stdio: 'ignore' });
  return r.error || r.status !== 0 ? 'the openssl command is not installed (scripts/deps.sh --test installs it)' : null;
}

function openssl(dir, args) {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

// One CA (caName) and, unless withServer is false, a server certificate signed by it.
// Returns {dir, caFile, caPem, server: {key, cert}, cleanup()} or null without openssl.
export function makeTestPKI({ caName = 'hybridllm test CA', withServer = true, dir: given } = {}) {
  if (opensslMissing()) return null;
  const dir = given ?? fs.mkdtempSync(path.join(os.tmpdir(), 'hltls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const out = { dir, caFile: path.join(dir, 'ca.pem'), caPem: fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8'), server: null };
  if (withServer) {
    const san = ['IP:127.0.0.1', ...TEST_HOSTS.map((h) => `DNS:${h}`)].join(',');
    fs.writeFileSync(path.join(dir, 'server.ext'),
      `subjectAltName=${san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
    openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
    openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext']);
    out.server = { key: fs.readFileSync(path.join(dir, 'server.key'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'server.pem'), 'utf8') };
  }
  out.cleanup = () => {
    if (!given) fs.rmSync(dir, { recursive: true, force: true });
  };
  return out;
}
