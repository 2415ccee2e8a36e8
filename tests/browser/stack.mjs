// Starts the real programs for a browser test: `mfa-server serve --dev` on a
// temporary data directory, `demo-portal` in front of it, and runs
// `mfa-authenticator` as the phone. Everything listens on 127.0.0.1, port 0.

import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../..');
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target');
const bin = (name) => path.join(targetDir, 'debug', name);

/** Where the screenshots of the last run go. */
export const screenshotDir = path.join(targetDir, 'browser-screenshots');

/**
 * Resolves with the first capture of each pattern, in order, as the
 * program prints them; rejects if it exits first.
 */
function readLines(child, name, patterns) {
  return new Promise((resolve, reject) => {
    const found = [];
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const match = patterns[found.length]?.exec(line);
      if (match) {
        found.push(match[1]);
        if (found.length === patterns.length) resolve(found);
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
  });
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', resolve));
}

/**
 * A server with a fresh dev tenant and a portal in front of it. `env`
 * adds server settings, e.g. `{ MFA_ENROLLMENT_TTL: '4s' }`.
 */
export async function startStack(env = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'mfa-browser-'));
  const server = spawn(bin('mfa-server'), ['serve', '--dev'], {
    env: {
      ...process.env,
      MFA_DATA_DIR: path.join(dir, 'server'),
      MFA_LISTEN: '127.0.0.1:0',
      MFA_METRICS_LISTEN: '127.0.0.1:0',
      RUST_LOG: 'error',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [portalKey, address] = await readLines(server, 'mfa-server', [
    /portal key:\s+(\S+)/,
    /listening on (\S+)/,
  ]);
  const portal = spawn(bin('demo-portal'), ['--listen', '127.0.0.1:0'], {
    env: { ...process.env, MFA_URL: `http://${address}`, MFA_PORTAL_KEY: portalKey },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [url] = await readLines(portal, 'demo-portal', [/demo portal on (\S+)/]);
  return {
    url,
    /** A new "phone": an authenticator with its own accounts directory. */
    async phone(name) {
      const home = path.join(dir, name);
      await mkdir(home, { recursive: true });
      return (...args) => run(bin('mfa-authenticator'), ['--home', home, ...args]);
    },
    async stop() {
      for (const child of [portal, server]) {
        child.kill('SIGTERM');
        await exited(child);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a program to its end: `{ code, stdout, stderr }`. */
function run(program, args, env = process.env) {
  return new Promise((resolve) => {
    execFile(program, args, { env }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * A server with a fresh dev tenant and its OpenID provider on, a relying
 * party registered for the tenant (`tests/oidc-rp/rp.py`, on Authlib), and
 * `mfa-authenticator` as the phone. `env` adds server settings.
 */
export async function startProviderStack(env = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'mfa-oidc-'));
  const serverEnv = {
    ...process.env,
    MFA_DATA_DIR: path.join(dir, 'server'),
    MFA_LISTEN: '127.0.0.1:0',
    MFA_METRICS_LISTEN: '127.0.0.1:0',
    MFA_OIDC__LISTEN: '127.0.0.1:0',
    RUST_LOG: 'error',
    ...env,
  };
  const server = spawn(bin('mfa-server'), ['serve', '--dev'], {
    env: serverEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [tenant, issuer] = await readLines(server, 'mfa-server', [
    /tenant id:\s+(\S+)/,
    /issuer (\S+)/,
    /listening on (\S+)/,
  ]);
  const python =
    process.env.OIDC_RP_PYTHON ?? path.join(targetDir, 'oidc-rp-venv', 'bin', 'python');
  const rp = spawn(python, [path.join(root, 'tests/oidc-rp/rp.py'), '--issuer', issuer], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  // It says where it listens, waits for its client's credentials, then is ready.
  const rpOutput = createInterface({ input: rp.stdout });
  const rpLine = () =>
    new Promise((resolve, reject) => {
      rpOutput.once('line', resolve);
      rp.once('exit', (code) => reject(new Error(`relying party exited (${code})`)));
    });
  const url = /relying party on (\S+)/.exec(await rpLine())?.[1];
  if (!url) throw new Error('the relying party did not say where it listens');
  const registered = await run(
    bin('mfa-server'),
    [
      'oidc-client', 'create', '--tenant', tenant, '--name', 'Example RP',
      '--redirect-uri', `${url}/callback`,
    ],
    serverEnv,
  );
  if (registered.code !== 0) throw new Error(`oidc-client create: ${registered.stderr}`);
  const clientId = /client_id:\s+(\S+)/.exec(registered.stdout)[1];
  const clientSecret = /client_secret:\s+(\S+)/.exec(registered.stdout)[1];
  rp.stdin.write(`${JSON.stringify({ client_id: clientId, client_secret: clientSecret })}\n`);
  const ready = await rpLine();
  if (ready !== 'relying party ready') throw new Error(`relying party said: ${ready}`);
  return {
    issuer,
    /** The relying party's URL. */
    url,
    /** Registers another client with `mfa-server oidc-client create`: its id. */
    async registerClient(...args) {
      const created = await run(
        bin('mfa-server'),
        ['oidc-client', 'create', '--tenant', tenant, ...args],
        serverEnv,
      );
      if (created.code !== 0) throw new Error(`oidc-client create: ${created.stderr}`);
      return /client_id:\s+(\S+)/.exec(created.stdout)[1];
    },
    async phone(name) {
      const home = path.join(dir, name);
      await mkdir(home, { recursive: true });
      return (...args) => run(bin('mfa-authenticator'), ['--home', home, ...args]);
    },
    async stop() {
      for (const child of [rp, server]) {
        child.kill('SIGTERM');
        await exited(child);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
