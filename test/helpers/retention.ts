/**
 * Nights laid out on disk as a run leaves them, for the retention tests: a run folder and an export of
 * known sizes, and (for a committed night) a product partition, an audience manifest and the real date
 * commit record over them, so that `dateCommitStatus` judges it as it judges a published night.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { audienceDir, dateCommitStatus, partitionDir, writeDateCommit } from '../../coordinator/publish/index.js';

export const ACCOUNT = 'acme';

export interface FakeNight {
  date: string;
  runDir: string;
  exportDir: string;
  /** Bytes written under the run folder and the export folder. */
  runBytes: number;
  exportBytes: number;
  runId: string;
}

/** A night of `date`: run folder (a nested model file and a shard), export CSV, and when `committed` its published partition and commit record. */
export async function fakeNight(outDir: string, date: string, o: { committed?: boolean; runBytes?: number; exportBytes?: number } = {}): Promise<FakeNight> {
  const runId = `${ACCOUNT}-${date.replaceAll('-', '')}-0123456789`;
  const runDir = path.join(outDir, 'runs', `account=${ACCOUNT}`, `date=${date}`);
  const exportDir = path.join(outDir, 'exports', `account=${ACCOUNT}`, `date=${date}`);
  const runBytes = o.runBytes ?? 3000;
  const exportBytes = o.exportBytes ?? 500;
  await mkdir(path.join(runDir, 'models', 'lstm-v1'), { recursive: true });
  await mkdir(path.join(runDir, 'score'), { recursive: true });
  await writeFile(path.join(runDir, 'models', 'lstm-v1', 'weights.bin'), Buffer.alloc(runBytes - 1000, 1));
  await writeFile(path.join(runDir, 'score', 'shard-0.arrow'), Buffer.alloc(1000, 2));
  await mkdir(exportDir, { recursive: true });
  const csv = path.join(exportDir, 'predictions.csv');
  await writeFile(csv, Buffer.alloc(exportBytes, 0x61));
  if (o.committed) {
    const partition = partitionDir(outDir, ACCOUNT, date, 'overall');
    await mkdir(partition, { recursive: true });
    const manifest = { formatVersion: 1, account: ACCOUNT, date, product: 'overall', runId, rowCount: 0, files: [] };
    await writeFile(path.join(partition, '_manifest.json'), JSON.stringify(manifest));
    const audiences = audienceDir(outDir, ACCOUNT, date);
    await mkdir(audiences, { recursive: true });
    await writeFile(path.join(audiences, '_audiences.json'), '{"audiences":[]}');
    await writeDateCommit({ outDir, account: ACCOUNT, date, runId, products: ['overall'], audienceManifest: path.join(audiences, '_audiences.json'), exports: [csv] });
    const status = await dateCommitStatus(outDir, ACCOUNT, date, runId);
    if (!status.committed) throw new Error(`fakeNight ${date}: not committed (${status.reason})`);
  }
  return { date, runDir, exportDir, runBytes, exportBytes, runId };
}
