/**
 * Transport credentials: the one place channel and server credentials are made (the run token's proofs
 * are handshake.ts's).
 *
 * Without TLS material every channel is plaintext (the local default, on loopback). With it, both ends
 * speak mutual TLS: the server demands a client certificate and both sides verify the peer's chain
 * against the run's CA. The peer's host name is not checked: workers are dialled by pod IP, which no
 * certificate issued ahead of time can name; a dedicated CA per deployment (a Kubernetes Secret) plus
 * the run token is what identifies a peer.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { SecurityError } from '../core/errors.js';
import { WORKER_ENV } from './index.js';

/** Paths of the PEM files of one side of mutual TLS. */
export interface TlsFiles {
  /** The CA that signed every certificate of the deployment; peers are verified against it. */
  ca: string;
  /** This side's certificate (chain), signed by `ca`. */
  cert: string;
  /** This side's private key. */
  key: string;
}

/** The PEM contents of TlsFiles, read once. */
export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Environment a worker reads its certificate paths from (a Secret mounted as files in Kubernetes). */
export const TLS_ENV = { ca: WORKER_ENV.tlsCa, cert: WORKER_ENV.tlsCert, key: WORKER_ENV.tlsKey } as const;

/** Reads the three PEM files; a missing or non-PEM file is a SecurityError naming it. */
export function readTlsFiles(files: TlsFiles): TlsMaterial {
  const read = (what: keyof TlsFiles, marker: RegExp): Buffer => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(files[what]);
    } catch (e) {
      throw new SecurityError(`TLS ${what} file ${files[what]} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): check security.tls.${what} or ${TLS_ENV[what]}`);
    }
    if (!marker.test(bytes.toString('latin1'))) {
      throw new SecurityError(`TLS ${what} file ${files[what]} is not a PEM ${what === 'key' ? 'private key' : 'certificate'}: check security.tls.${what} or ${TLS_ENV[what]}`);
    }
    return bytes;
  };
  return {
    ca: read('ca', /-----BEGIN CERTIFICATE-----/),
    cert: read('cert', /-----BEGIN CERTIFICATE-----/),
    key: read('key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/),
  };
}

/** TlsFiles from NEXTBUY_TLS_*: all three or none (null); some but not all is a SecurityError. */
export function tlsFilesFromEnv(env: NodeJS.ProcessEnv = process.env): TlsFiles | null {
  const ca = env[TLS_ENV.ca] || '';
  const cert = env[TLS_ENV.cert] || '';
  const key = env[TLS_ENV.key] || '';
  if (!ca && !cert && !key) return null;
  if (!ca || !cert || !key) {
    const missing = (Object.keys(TLS_ENV) as (keyof TlsFiles)[]).filter((k) => !env[TLS_ENV[k]]).map((k) => TLS_ENV[k]);
    throw new SecurityError(`mutual TLS needs ${Object.values(TLS_ENV).join(', ')} together; ${missing.join(', ')} not set`);
  }
  return { ca, cert, key };
}

/** The environment that hands TlsFiles to a worker process. */
export function tlsEnv(files: TlsFiles | null): Record<string, string> {
  return files ? { [TLS_ENV.ca]: files.ca, [TLS_ENV.cert]: files.cert, [TLS_ENV.key]: files.key } : {};
}

let processTls: TlsMaterial | null = null;

/**
 * Sets the TLS material this process uses where a caller passes none (a worker process, which serves
 * and registers with one identity). The coordinator passes its material explicitly instead.
 */
export function useProcessTls(tls: TlsMaterial | null): void {
  processTls = tls;
}

/** The TLS material this process serves with (useProcessTls), or null in plaintext. */
export function processTlsMaterial(): TlsMaterial | null {
  return processTls;
}

/** Credentials every coordinator → worker and worker → coordinator channel is created with. */
export function channelCredentials(tls: TlsMaterial | null = processTls): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca, tls.key, tls.cert, { checkServerIdentity: () => undefined });
}

/** Credentials every nextbuy gRPC server (worker, registration) binds with. */
export function serverCredentials(tls: TlsMaterial | null = processTls): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
}

/** True for 127.0.0.0/8, ::1 and localhost (with or without a :port). */
export function isLoopback(hostOrAddress: string): boolean {
  let host = hostOrAddress.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) host = bracketed[1]!;
  else if (/^[^:]+:\d+$/.test(host)) host = host.slice(0, host.lastIndexOf(':'));
  host = host.toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The addresses (or hosts) in `addresses` that are not loopback: where plaintext would leave the machine. */
export function nonLoopback(addresses: readonly string[]): string[] {
  return addresses.filter((a) => !isLoopback(a));
}
