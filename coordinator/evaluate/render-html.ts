/**
 * The report as one self-contained HTML page: tables, three inline SVG charts per product (ROC,
 * cumulative gains, reliability) and the JSON figures embedded for machines. No script, no external asset.
 */
import { escapeXml as escape, lineChart, type ChartSeries } from './charts.js';
import { positivesWarning } from './positives.js';
import type { EvaluationReport, ProductReport, ReportEntry } from './report.js';

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

/** Metric columns of the per-product table, in order: [key in Metrics, heading]. */
export const METRIC_COLUMNS = [
  ['auc', 'AUC'],
  ['brier', 'Brier'],
  ['logLoss', 'Log loss'],
  ['lift5', 'Lift@5 %'],
  ['lift20', 'Lift@20 %'],
  ['f1', 'Best F1'],
  ['f1Threshold', 'F1 threshold'],
] as const;

/** How the HTML prints a metric: 4 decimals, '—' when undefined. */
export function formatMetric(value: number | null): string {
  return value === null ? '—' : value.toFixed(4);
}

export function renderHtml(report: EvaluationReport): string {
  const h = report.header;
  const title = `nextbuy evaluation — ${h.account} ${h.date}`;
  const headerRows: [string, string][] = [
    ['Account', h.account],
    ['Date', h.date],
    ['Features as of', h.asOf],
    ['Label window', `${h.labelWindow.from} → ${h.labelWindow.to}`],
    ...(h.trainingWindow ? [['Training window', `${h.trainingWindow.from} → ${h.trainingWindow.to}`] as [string, string]] : []),
    ['Run id', h.runId],
    ...Object.entries(h.modelVersions).map(([name, version]): [string, string] => [`Model ${name}`, version]),
    ...(h.generatedAt ? [['Generated', h.generatedAt] as [string, string]] : []),
  ];
  const json = JSON.stringify(report).replaceAll('<', '\\u003c');
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escape(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head><body>',
    `<h1>${escape(title)}</h1>`,
    '<section class="run"><h2>Run</h2>',
    keyValueTable(headerRows),
    '</section>',
    '<section class="stats"><h2>Run statistics</h2>',
    Object.keys(report.stats).length === 0
      ? '<p>None given.</p>'
      : keyValueTable(Object.entries(report.stats).map(([k, v]) => [k, statValue(v)]), true),
    '</section>',
    ...report.products.map((p, i) => productSection(p, i)),
    `<script type="application/json" id="report-data">${json}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

function productSection(p: ProductReport, index: number): string {
  const flagged = p.flags.length > 0;
  const colors = new Map(p.entries.map((e, i) => [e.name, PALETTE[i % PALETTE.length]!]));
  const series = (points: (e: ReportEntry) => [number, number][], markers = false): ChartSeries[] =>
    p.entries.map((e) => ({ name: e.name, color: colors.get(e.name)!, dashed: e.kind === 'baseline', points: points(e), markers }));
  const roc = series((e) => e.metrics.roc.map((r) => [r.fpr, r.tpr]));
  const gains = series((e) => e.metrics.gains.map((g) => [g.fraction, g.gain]));
  const reliability = series(
    (e) =>
      e.metrics.calibration
        .filter((b) => b.meanPredicted !== null && b.observedRate !== null)
        .map((b) => [b.meanPredicted!, b.observedRate!]),
    true,
  );
  const rows = p.entries
    .map((e) => {
      const cells = METRIC_COLUMNS.map(([key]) => `<td data-metric="${key}">${formatMetric(e.metrics[key])}</td>`).join('');
      const ci = e.aucCi ? `${formatMetric(e.aucCi.lower)} – ${formatMetric(e.aucCi.upper)}` : '—';
      const classes = [...(e.name === p.bestByAuc && !flagged ? ['best'] : []), ...(e.name === p.published ? ['published'] : [])];
      const cls = classes.length > 0 ? ` class="${classes.join(' ')}"` : '';
      return `<tr data-entry="${escape(e.name)}"${cls}><th scope="row"><span class="swatch" style="background:${colors.get(e.name)}"></span>${escape(e.name)}</th><td>${e.kind}</td><td>${escape(e.modelVersion ?? '')}</td>${cells.replace('</td>', `</td><td data-ci="auc">${ci}</td>`)}<td>${escape(e.note ?? '')}</td></tr>`;
    })
    .join('\n');
  return [
    `<section class="product${flagged ? ' flagged' : ''}" id="product-${index}" data-product="${escape(p.product)}">`,
    `<h2>Product: ${escape(p.product)}</h2>`,
    ...(flagged ? [`<p class="warning" data-flags="${escape(p.flags.map((f) => f.code).join(' '))}">Warning: ${escape(positivesWarning(p.flags)!)}.</p>`] : []),
    `<p>${p.n.toLocaleString('en-US')} customers, ${p.positives.toLocaleString('en-US')} positives, base rate ${(p.baseRate * 100).toFixed(2)} %.` +
      (p.bestByAuc && !flagged ? ` Best AUC: <strong>${escape(p.bestByAuc)}</strong>.` : '') +
      '</p>',
    `<p class="verdict" data-outcome="${p.verdict.outcome}">Verdict: ${escape(p.verdict.text)}.</p>`,
    `<div class="figures">`,
    '<table class="metrics"><thead><tr><th>Scores</th><th>Kind</th><th>Version</th>',
    METRIC_COLUMNS.map(([key, heading]) => `<th>${heading}</th>${key === 'auc' ? '<th>AUC 95 % CI (DeLong)</th>' : ''}`).join(''),
    '<th>Note</th></tr></thead><tbody>',
    rows,
    '</tbody></table>',
    '<div class="charts">',
    lineChart({ kind: 'roc', title: 'ROC', xLabel: 'False positive rate', yLabel: 'True positive rate', series: roc, diagonalLabel: 'chance' }),
    lineChart({
      kind: 'gains',
      title: 'Cumulative gains (lift)',
      xLabel: 'Share of customers targeted',
      yLabel: 'Share of buyers reached',
      series: gains,
      diagonalLabel: 'random targeting',
    }),
    lineChart({
      kind: 'calibration',
      title: 'Reliability',
      xLabel: 'Mean predicted score',
      yLabel: 'Observed purchase rate',
      series: reliability,
      diagonalLabel: 'perfect calibration',
    }),
    '</div>',
    '</div>',
    '</section>',
  ].join('\n');
}

function keyValueTable(rows: [string, string][], preformatted = false): string {
  const body = rows
    .map(([k, v]) => `<tr><th scope="row">${escape(k)}</th><td>${preformatted ? v : escape(v)}</td></tr>`)
    .join('');
  return `<table class="kv"><tbody>${body}</tbody></table>`;
}

/** A stat value as HTML: numbers and strings plainly, anything else as compact JSON. */
function statValue(v: unknown): string {
  if (typeof v === 'number') return escape(Number.isInteger(v) ? v.toLocaleString('en-US') : String(v));
  if (typeof v === 'string' || typeof v === 'boolean') return escape(String(v));
  return `<code>${escape(JSON.stringify(v) ?? String(v))}</code>`;
}

const STYLE = [
  'body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1120px}',
  'h1{font-size:22px}h2{font-size:17px;margin-top:28px}',
  'table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 10px;border-bottom:1px solid #e5e5e5;text-align:left}',
  'table.metrics td[data-metric]{text-align:right;font-variant-numeric:tabular-nums}',
  'tr.best th{font-weight:700}.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}',
  '.charts{display:flex;flex-wrap:wrap;gap:12px}code{font-size:12px}',
  'td[data-ci]{text-align:right;font-variant-numeric:tabular-nums;color:#555}tr.published th{text-decoration:underline}',
  '.warning{color:#8a5a00;background:#fff6e0;padding:4px 8px;border-left:3px solid #e0a000}',
  '.flagged .figures{opacity:.45;filter:grayscale(1)}.verdict{font-weight:600}',
].join('');
