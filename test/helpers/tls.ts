/**
 * Test-only certificates, generated at test time with the `openssl` command (nothing committed):
 * a CA per "deployment", and leaf certificates it signs for the coordinator and the workers.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TlsFiles } from '../../proto/credentials.js';

export interface TestPki {
  dir: string;
  /** Paths of a certificate signed by the CA named `ca` (created on first use), for `name`. */
  issue(ca: string, name: string): Promise<TlsFiles>;
  cleanup(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A temp folder of certificates: one CA per distinct `ca` name, EC P-256 keys, SAN localhost + 127.0.0.1. */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-pki-'));
  const cas = new Set<string>();
  const ensureCa = (ca: string) => {
    if (cas.has(ca)) return;
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${ca}-ca.key`], dir);
    openssl(['req', '-x509', '-new', '-key', `${ca}-ca.key`, '-sha256', '-days', '2', '-subj', `/CN=nextbuy test CA ${ca}`, '-out', `${ca}-ca.pem`], dir);
    cas.add(ca);
  };
  return {
    dir,
    async issue(ca, name) {
      ensureCa(ca);
      const base = `${ca}-${name}`;
      await writeFile(path.join(dir, `${base}.ext`), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${base}.ec.key`], dir);
      // PKCS#8 ("BEGIN PRIVATE KEY"), the form gRPC's TLS stack reads everywhere.
      openssl(['pkcs8', '-topk8', '-nocrypt', '-in', `${base}.ec.key`, '-out', `${base}.key`], dir);
      openssl(['req', '-new', '-key', `${base}.key`, '-subj', `/CN=${name}`, '-out', `${base}.csr`], dir);
      openssl(
        ['x509', '-req', '-in', `${base}.csr`, '-CA', `${ca}-ca.pem`, '-CAkey', `${ca}-ca.key`, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', `${base}.ext`, '-out', `${base}.pem`],
        dir,
      );
      return { ca: path.join(dir, `${ca}-ca.pem`), cert: path.join(dir, `${base}.pem`), key: path.join(dir, `${base}.key`) };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A worker process started by hand, outside any backend: a stray pod of another run, account or CA. */
export interface StrayWorker {
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves with the first log line (stderr, JSON) whose `event` matches. */
  waitFor(event: string): Promise<Record<string, unknown>>;
  kill(): void;
}

export function spawnStrayWorker(env: Record<string, string>, name = 'stray'): StrayWorker {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), path.join(root, 'worker/main.ts'), '--engine', 'echo', '--name', name], {
    cwd: root,
    env: { ...process.env, NEXTBUY_TLS_CA: '', NEXTBUY_TLS_CERT: '', NEXTBUY_TLS_KEY: '', NEXTBUY_COORDINATOR: '', NEXTBUY_RUN_ID: '', NEXTBUY_LOG: 'debug', NEXTBUY_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { event: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  let err = '';
  let partial = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      try {
        const l = JSON.parse(p) as Record<string, unknown>;
        lines.push(l);
        for (const w of waiters.filter((x) => x.event === l.event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      } catch {
        // not a log line
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    lines,
    stderr: () => err,
    exited,
    waitFor: (event) => {
      const seen = lines.find((l) => l.event === event);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ event, resolve }));
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
