import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { EvaluationReport } from '../coordinator/evaluate/index.js';
import { openInChromium, type ChromiumPage } from './helpers/chromium.js';
import { runCli, taobaoJob } from './helpers/cli.js';

/**
 * The report of a real run (the Taobao sample with small models, two committed nights) opened in headless
 * chromium: what the browser parsed must hold, per product, every section, table and chart, and the page
 * must log nothing to the console.
 */
const EARLIER = '2017-12-01';
const NIGHT = '2017-12-02';

let dir: string;
let report: EvaluationReport;
let page: ChromiumPage;

beforeAll(async () => {
  const job = await taobaoJob({
    model: { architectures: ['logistic', 'lstm'], epochs: 2, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4 },
    cluster: { workers: 1 },
    shards: { count: 2 },
    champion: { compareWithPrevious: false },
  });
  dir = job.dir;
  for (const date of [EARLIER, NIGHT]) {
    const r = await runCli(['run', '--account', 'taobao', '--date', date, '--conf', job.conf]);
    expect(r.code, r.stderr).toBe(0);
  }
  const reportDir = path.join(dir, 'out', 'runs', 'account=taobao', `date=${NIGHT}`, 'report');
  report = JSON.parse(await readFile(path.join(reportDir, 'report.json'), 'utf8')) as EvaluationReport;
  page = await openInChromium(path.join(reportDir, 'report.html'));
}, 180_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The parsed DOM of one product's section (up to the next product's). */
function productDom(product: string): string {
  const start = page.dom.indexOf(`data-product="${product}"`);
  expect(start, `no section for product ${product}`).toBeGreaterThan(0);
  const next = page.dom.indexOf('<section class="product', start);
  return page.dom.slice(start, next < 0 ? page.dom.indexOf('<script type="application/json"') : next);
}

const count = (text: string, pattern: RegExp): number => text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;

describe('the report in a real browser', () => {
  test('parses whole, draws, logs no console error, and embeds the same figures as report.json', () => {
    expect(page.console).toEqual([]);
    expect(page.screenshotBytes).toBeGreaterThan(10_000);
    expect(page.dom).toContain(`<h1>nextbuy evaluation — taobao ${NIGHT}</h1>`);
    const embedded = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(page.dom)![1]!;
    expect(JSON.parse(embedded)).toEqual(report);
    expect(count(page.dom, /<section class="product/)).toBe(report.products.length);
  });

  test('run statistics are a labelled table with units', () => {
    const stats = page.dom.slice(page.dom.indexOf('<section class="stats">'), page.dom.indexOf('</section>', page.dom.indexOf('<section class="stats">')));
    expect(stats).toMatch(/<th scope="row">Rows read<\/th><td>[\d,]+ rows<\/td>/);
    expect(stats).toMatch(/<th scope="row">Time out of range<\/th><td>35 rows<\/td>/);
    expect(stats).toMatch(/<th scope="row">Customers scored<\/th><td>814 customers<\/td>/);
    expect(stats).toMatch(/<th scope="row">train<\/th><td>[\d.]+ (ms|s)<\/td>/);
    expect(stats).toMatch(/<th scope="row">Workers<\/th><td>1 worker<\/td>/);
    expect(stats).not.toMatch(/rowsRead|rowsRejected|stageMs|time_out_of_range|<code>|\{/);
  });

  test('each product has its metrics, reliability on its own range, deciles, histogram, audiences, training curves and the earlier night', () => {
    expect(report.products.length).toBeGreaterThan(1);
    for (const p of report.products) {
      const dom = productDom(p.product);
      expect(count(dom, /<tr data-entry=/)).toBe(p.entries.length);
      for (const kind of ['roc', 'gains', 'calibration', 'histogram', 'training-auc', 'training-loss', 'history']) {
        expect(count(dom, new RegExp(`<svg class="chart ${kind}"`)), `${p.product}: ${kind} chart`).toBe(1);
      }
      expect(count(dom, /<tr data-decile="\d+">/)).toBe(10);
      expect(p.deciles!.reduce((s, d) => s + d.customers, 0)).toBe(p.n);
      expect(p.deciles!.reduce((s, d) => s + d.buyers, 0)).toBe(p.positives);
      // Audiences as published: in_store and sms by share, then the rest.
      expect([...dom.matchAll(/<tr data-action="([^"]+)">/g)].map((m) => m[1])).toEqual(['in_store', 'sms', 'none']);
      expect(p.audiences!.reduce((s, a) => s + a.customers, 0)).toBe(p.n);
      expect(p.audiences![0]!.customers).toBe(Math.floor(0.05 * p.n));
      // Training curves: one line per model that scores this product.
      expect(count(dom, /<tr data-model=/)).toBe(p.training.length);
      expect(p.training.map((m) => m.name).sort()).toEqual([`logistic.${p.product}`, `lstm.${p.product}`]);
      // The earlier committed night, then this one.
      expect(p.earlierNights.map((e) => e.date)).toEqual([EARLIER]);
      expect(dom).toMatch(new RegExp(`<tr class="earlier( few)?"><th scope="row">${EARLIER}</th>`));
      expect(dom).toContain('<tr class="this-night');
      // Reliability on the scores' own range: the axis ends a little above the highest point.
      const chart = /<svg class="chart calibration".*?<\/svg>/s.exec(dom)![0];
      const top = Number.parseFloat([...chart.matchAll(/<text class="tick x"[^>]*>([^<]*) %</g)].at(-1)![1]!) / 100;
      const points = p.entries.flatMap((e) => e.reliability ?? []).flatMap((b) => [b.meanPredicted, b.observedRate]);
      expect(top).toBeGreaterThanOrEqual(Math.max(...points));
      if (Math.max(...points) < 0.2) expect(top).toBeLessThan(0.5);
    }
  });

  test('a product with too few positives is greyed under its warning and never has a best AUC in bold', () => {
    const flagged = report.products.filter((p) => p.flags.length > 0);
    const healthy = report.products.filter((p) => p.flags.length === 0);
    expect(flagged.length).toBeGreaterThan(0);
    expect(healthy.length).toBeGreaterThan(0);
    for (const p of flagged) {
      const dom = productDom(p.product);
      expect(page.dom).toContain(`<section class="product flagged" id="product-${report.products.indexOf(p)}" data-product="${p.product}">`);
      expect(dom).toMatch(/<p class="warning" data-flags="[^"]+">Warning: too few positives/);
      expect(dom).not.toContain('Best AUC');
      expect(dom).not.toMatch(/class="best/);
    }
    for (const p of healthy) {
      const dom = productDom(p.product);
      expect(dom).toContain(`Best AUC: <strong>${p.bestByAuc}</strong>`);
      expect(dom).toMatch(/<tr data-entry="[^"]+" class="best/);
    }
  });
});
