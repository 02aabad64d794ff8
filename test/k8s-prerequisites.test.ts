/**
 * `--env k8s` checks what it needs before any work: the workers file, a kube config (or the pod's service
 * account), the pod's downward-API settings and, for a TLS job, the workers' Secret. Missing any, the command
 * exits 3 with what to do, and nothing is written: no output folder, no run folder, no preprocess output.
 */
import { access, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { runCli, taobaoJob } from './helpers/cli.js';

const KUBECONFIG_TEXT = `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:6443' } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u, namespace: nextbuy } }]
current-context: x
`;
const POD = { POD_NAME: 'nextbuy-nightly-1-x', POD_UID: 'uid-1', POD_IP: '10.0.0.9', POD_NAMESPACE: 'nextbuy' };

let dir: string;
let conf: string;
let files: { workers: string; tlsWorkers: string; kubeconfig: string; home: string };
beforeAll(async () => {
  ({ dir, conf } = await taobaoJob());
  const home = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-home-'));
  files = { workers: path.join(dir, 'workers.yaml'), tlsWorkers: path.join(dir, 'workers-no-secret.yaml'), kubeconfig: path.join(dir, 'kubeconfig'), home };
  await writeFile(files.workers, 'image: registry.example.com/nextbuy-worker-cpu:1\ntlsSecret: nextbuy-worker-tls\n');
  await writeFile(files.tlsWorkers, 'image: registry.example.com/nextbuy-worker-cpu:1\n');
  await writeFile(files.kubeconfig, KUBECONFIG_TEXT);
});

/** A laptop: no kube config, no service account, no downward API, unless the case adds them. */
function laptop(extra: Record<string, string>): Record<string, string> {
  return { HOME: files.home, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', POD_NAME: '', POD_UID: '', POD_IP: '', POD_NAMESPACE: '', NEXTBUY_WORKERS_CONF: path.join(dir, 'missing.yaml'), ...extra };
}

const exists = (p: string) => access(p).then(() => true, () => false);

describe('--env k8s prerequisites', () => {
  test.each([
    ['no workers file', () => laptop({}), /missing\.yaml: \(file\) cannot be read \(ENOENT\): mount ConfigMap nextbuy-config at \/etc\/nextbuy or set NEXTBUY_WORKERS_CONF/],
    ['a workers file without an image', () => laptop({ NEXTBUY_WORKERS_CONF: conf }), /job\.yaml: account is not a known field/],
    ['no kube config and no service account', () => laptop({ NEXTBUY_WORKERS_CONF: files.workers }), /no Kubernetes configuration found: .*set KUBECONFIG/],
    ['a KUBECONFIG that does not exist', () => laptop({ NEXTBUY_WORKERS_CONF: files.workers, KUBECONFIG: path.join(dir, 'nope') }), /KUBECONFIG .*nope cannot be loaded/],
    ['no downward-API settings', () => laptop({ NEXTBUY_WORKERS_CONF: files.workers, KUBECONFIG: files.kubeconfig }), /needs POD_NAME, POD_UID, POD_IP .*k8s\/base\/cronjob\.yaml/],
  ])('run with %s fails at once with exit 3, writing nothing', async (_, env, message) => {
    const r = await runCli(['run', '--account', 'taobao', '--date', '2017-12-02', '--env', 'k8s', '--conf', conf], { env: env() });
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/internal error|stage\.start|preprocess/);
    expect(r.code).toBe(3);
    expect(await exists(path.join(dir, 'out'))).toBe(false);
  }, 60_000);

  test('a TLS job needs the workers\' Secret named in workers.yaml', async () => {
    const { dir: tlsDir, conf: tlsConf } = await taobaoJob({ security: { tls: { ca: 'ca.pem', cert: 'c.pem', key: 'c.key' } } });
    const r = await runCli(['run', '--account', 'taobao', '--date', '2017-12-02', '--env', 'k8s', '--conf', tlsConf], {
      env: laptop({ NEXTBUY_WORKERS_CONF: files.tlsWorkers, KUBECONFIG: files.kubeconfig, ...POD }),
    });
    expect(r.stderr).toMatch(/workers-no-secret\.yaml: tlsSecret is required: the job sets security\.tls/);
    expect(r.code).toBe(3);
    expect(await exists(path.join(tlsDir, 'out'))).toBe(false);
  }, 60_000);

  test('a backfill checks once, before its first date', async () => {
    const r = await runCli(['backfill', '--account', 'taobao', '--from', '2017-12-01', '--to', '2017-12-02', '--env', 'k8s', '--conf', conf], { env: laptop({}) });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/missing\.yaml: \(file\) cannot be read/);
    expect(r.stderr).not.toMatch(/backfill 2017-12-0\d/);
    expect(await exists(path.join(dir, 'out'))).toBe(false);
  }, 60_000);
});
