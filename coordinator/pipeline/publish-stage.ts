/** Commits the night's prediction table (each product's champion, calibrated: see champion-stage.ts) and the marketing audiences. */
import type { Job } from '../../jobs/job.js';
import { DAY_MS } from '../../jobs/job.js';
import { formatDate, parseDateMs } from '../../jobs/job-file.js';
import { log } from '../../core/log.js';
import { writeJsonDurably } from '../../core/durable-fs.js';
import { AUDIENCE_MANIFEST, dateDir, exportAudiences, exportCsv, productsWithEmptyAudiences, publishPredictions, removeDateCommit, writeDateCommit, type ProductPredictions } from '../publish/index.js';
import path from 'node:path';
import { championFile, type ChampionFile, type ProductChampion } from './champion-stage.js';
import { nightPublishedScores } from './champion-report.js';
import { recordPublishedChampions } from './previous-champion.js';
import { addAudiencesToReport } from './report-publish.js';
import { readJson } from './run-folder.js';
import type { PreprocessResult } from '../preprocess/index.js';
import { ensembledScores, type EnsembleFile, type NightScores } from './evaluate-stage.js';
import type { RunFolder } from './run-folder.js';
import { files, requireJson, type ModelsFile } from './state.js';

export interface PublishSummary {
  predictionsDir: string;
  audiencesDir: string;
  csvFile: string;
  partitions: { product: string; rows: number; dir: string }[];
  /** What each product published, and why. */
  champions: { product: string; candidate: string; source: 'this-night' | 'previous'; reason: string; calibration: string }[];
  /** E.g. products whose audiences are all empty. */
  warnings: string[];
}

export interface PublishStageOptions {
  job: Job;
  folder: RunFolder;
  pre: PreprocessResult;
  models: ModelsFile;
  /** The night's ensembled scores when evaluate ran in the same invocation; read from the run folder otherwise. */
  night: NightScores | null;
  /** Stage durations so far (ms), added to the report's statistics. @default none added */
  timings?: Partial<Record<string, number>>;
}

/**
 * Test hook for end-to-end fault injection: `NEXTBUY_TEST_KILL_AT=<crash point>[@<product>]` SIGKILLs the
 * process at that point of the publish (see CRASH_POINTS in coordinator/publish/publish.ts).
 */
export const KILL_AT_ENV = 'NEXTBUY_TEST_KILL_AT';

export async function publishStage(o: PublishStageOptions): Promise<PublishSummary> {
  const { job, folder } = o;
  const ensembles = await requireJson<EnsembleFile>(files(folder).ensemble, 'evaluate', folder);
  const night = o.night ?? (await ensembledScores(folder, o.pre, o.models, ensembles));
  const { rows, perProduct } = night;
  const champions = await requireJson<ChampionFile>(championFile(folder), 'evaluate', folder);
  const published = await nightPublishedScores(folder, night, champions);
  const dateMs = parseDateMs(folder.date)!;
  const common = {
    outDir: folder.outDir,
    account: job.account,
    date: folder.date,
    runId: folder.runId,
    // The logical time of the scores (the as-of instant), so that a rerun writes identical bytes.
    scoredAt: `${folder.date}T00:00:00.000Z`,
    actions: job.actions,
    inputWindow: { from: formatDate(dateMs - job.sequence.lookbackDays * DAY_MS), to: formatDate(dateMs - DAY_MS) },
    products: perProduct.map((p) => publishedProduct(champions.products[p.product]!, rows.customerIds, published.get(p.product)!)),
  };
  const where = { outDir: folder.outDir, account: job.account, date: folder.date, csvFormulaGuard: job.output.csvFormulaGuard ?? true };
  await removeDateCommit(where.outDir, where.account, where.date);
  const killAt = process.env[KILL_AT_ENV];
  const result = await publishPredictions({
    ...common,
    memoryLimit: job.resources.memoryLimit,
    ...(job.output.publishedMode ? { modes: job.output.publishedMode } : {}),
    ...(killAt ? { crashAt: killAt, crashBy: 'kill' as const } : {}),
  });
  const audiences = await exportAudiences(where);
  const warnings = await warnAboutEmptyAudiences(folder, productsWithEmptyAudiences(audiences.audiences));
  await addAudiencesToReport(folder, audiences.audiences, new Map(result.partitions.map((p) => [p.product, p.manifest.rowCount])), o.timings);
  await recordPublishedChampions(folder, champions);
  const csv = await exportCsv(where);
  await writeDateCommit({
    ...where,
    runId: folder.runId,
    products: result.partitions.map((p) => p.product),
    audienceManifest: path.join(audiences.dir, AUDIENCE_MANIFEST),
    exports: [csv.file],
    ...(job.output.publishedMode ? { modes: job.output.publishedMode } : {}),
  });
  return {
    predictionsDir: dateDir(folder.outDir, job.account, folder.date),
    audiencesDir: audiences.dir,
    csvFile: csv.file,
    partitions: result.partitions.map((p) => ({ product: p.product, rows: p.manifest.rowCount, dir: p.dir })),
    champions: perProduct.map((p) => champions.products[p.product]!).map((c) => ({ product: c.product, candidate: c.candidate, source: c.source, reason: c.reason, calibration: c.calibration.method })),
    warnings: [...perProduct.map((p) => champions.products[p.product]!).flatMap((c) => c.warnings.map((w) => `product ${c.product}: ${w}`)), ...warnings],
  };
}

/** A product's published rows: the champion's calibrated scores, with the champion recorded in the manifest. */
function publishedProduct(c: ProductChampion, customerIds: string[], scores: Float32Array): ProductPredictions {
  return {
    product: c.product,
    customerIds,
    scores,
    modelVersions: c.models.map((m) => m.modelVersion),
    ...(c.ensemble ? { ensemble: c.ensemble } : {}),
    champion: {
      candidate: c.candidate,
      source: c.source,
      reason: c.reason,
      calibration: c.calibration,
      warnings: c.warnings,
      challenger: c.challenger,
      validation: c.validation,
    },
  };
}

/** Logs a warning per product whose audiences are all empty, and adds them to report.json's products. */
export async function warnAboutEmptyAudiences(folder: RunFolder, products: string[]): Promise<string[]> {
  const warnings = products.map((p) => `product ${p}: every audience is empty (no customer reached any action); lower the thresholds or give actions as topShare`);
  for (const [i, product] of products.entries()) log.warn('publish.empty_audiences', { product, warning: warnings[i]! });
  const reportFile = path.join(folder.reportDir, 'report.json');
  const report = await readJson<{ products: { product: string; warnings?: string[] }[] }>(reportFile);
  if (report && products.length > 0) {
    for (const p of report.products) if (products.includes(p.product)) p.warnings = [...(p.warnings ?? []), warnings[products.indexOf(p.product)]!];
    await writeJsonDurably(reportFile, report);
  }
  return warnings;
}
