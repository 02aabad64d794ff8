/**
 * The report as one self-contained HTML page: the run and its statistics, then per product the metrics
 * table, ROC, cumulative gains and reliability (on the scores' own range), the published scores by decile
 * with their histogram, customers per action, training curves per model and the same product's AUC on
 * earlier nights; a product with too few positives is greyed under its warning. Inline SVG only, and the
 * JSON figures embedded for machines. No script, no external asset.
 */
import { axisMax, barChart, escapeXml as escape, lineChart, type ChartAxis, type ChartSeries } from './charts.js';
import { positivesWarning } from './positives.js';
import { evaluatedOnOf, PUBLISHED, type EvaluationReport, type ProductReport, type ReportEntry, type TrainingCurve } from './report.js';
import { statRows } from './run-stats.js';

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
    statsTable(report.stats),
    '</section>',
    ...report.products.map((p, i) => productSection(withDefaults(p), i, evaluatedOnOf(report))),
    `<script type="application/json" id="report-data">${json}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

/** A product of a report.json written before the decile, histogram, training and history fields: shown without them. */
function withDefaults(p: ProductReport): ProductReport {
  return {
    ...p,
    entries: p.entries.map((e) => ({ ...e, reliability: e.reliability ?? null })),
    deciles: p.deciles ?? null,
    histogram: p.histogram ?? null,
    training: p.training ?? [],
    earlierNights: p.earlierNights ?? [],
  };
}

function productSection(p: ProductReport, index: number, evaluatedOn: string): string {
  const flagged = p.flags.length > 0;
  const colors = new Map(p.entries.map((e, i) => [e.name, PALETTE[i % PALETTE.length]!]));
  const series = (entries: ReportEntry[], points: (e: ReportEntry) => [number, number][], markers = false): ChartSeries[] =>
    entries.map((e) => ({ name: e.name, color: colors.get(e.name)!, dashed: e.kind === 'baseline', points: points(e), markers }));
  const roc = series(p.entries, (e) => e.metrics.roc.map((r) => [r.fpr, r.tpr]));
  const gains = series(p.entries, (e) => e.metrics.gains.map((g) => [g.fraction, g.gain]));
  const calibrated = p.entries.filter((e) => e.reliability !== null);
  const reliability = series(calibrated, (e) => e.reliability!.map((b) => [b.meanPredicted, b.observedRate]), true);
  const reliabilityTop = axisMax(Math.max(0, ...reliability.flatMap((s) => s.points.flat())), { cap: 1 });
  const rows = p.entries
    .map((e) => {
      const cells = METRIC_COLUMNS.map(([key]) => `<td data-metric="${key}">${formatMetric(e.metrics[key])}</td>`).join('');
      const ci = e.aucCi ? `${formatMetric(e.aucCi.lower)} – ${formatMetric(e.aucCi.upper)}` : '—';
      const classes = [...(e.name === p.bestByAuc && !flagged ? ['best'] : []), ...(e.name === p.published ? ['published'] : [])];
      const cls = classes.length > 0 ? ` class="${classes.join(' ')}"` : '';
      return `<tr data-entry="${escape(e.name)}"${cls}><th scope="row"><span class="swatch" style="background:${colors.get(e.name)}"></span>${escape(e.name)}</th><td>${e.kind}</td><td>${escape(e.modelVersion ?? '')}</td>${cells.replace('</td>', `</td><td data-ci="auc">${ci}</td>`)}<td>${escape(e.note ?? '')}</td></tr>`;
    })
    .join('\n');
  const warnings = [
    ...(flagged ? [`<p class="warning" data-flags="${escape(p.flags.map((f) => f.code).join(' '))}">Warning: ${escape(positivesWarning(p.flags)!)}.</p>`] : []),
    ...(p.warnings ?? []).map((w) => `<p class="warning">Warning: ${escape(w)}.</p>`),
  ];
  return [
    `<section class="product${flagged ? ' flagged' : ''}" id="product-${index}" data-product="${escape(p.product)}">`,
    `<h2>Product: ${escape(p.product)}</h2>`,
    ...warnings,
    `<p>${p.n.toLocaleString('en-US')} customers, ${p.positives.toLocaleString('en-US')} positives, base rate ${formatPercent(p.baseRate)}.` +
      (p.bestByAuc && !flagged ? ` Best AUC: <strong>${escape(p.bestByAuc)}</strong>.` : '') +
      '</p>',
    `<p class="verdict" data-outcome="${p.verdict.outcome}">Verdict: ${escape(p.verdict.text)}.</p>`,
    championLine(p),
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
      title: 'Reliability (10 equal-count bins)',
      xLabel: 'Mean predicted score',
      yLabel: 'Observed purchase rate',
      series: reliability,
      x: percentAxis(reliabilityTop),
      y: percentAxis(reliabilityTop),
      diagonalLabel: 'perfect calibration',
    }),
    '</div>',
    publishedScoresSection(p),
    audiencesSection(p),
    trainingSection(p),
    earlierNightsSection(p, evaluatedOn),
    '</div>',
    '</section>',
  ].join('\n');
}

type ChampionSummary = { candidate?: string; reason?: string; calibration?: { method?: string } };
const championOf = (p: ProductReport): ChampionSummary | undefined => (p as ProductReport & { champion?: ChampionSummary }).champion;

/** The published entry's name for people: the champion's name for the entry `published`, else the entry's own. */
function publishedName(p: ProductReport): string {
  return (p.published === PUBLISHED ? championOf(p)?.candidate : undefined) ?? p.published ?? '—';
}

/** What is published and why (withChampions adds `champion` to each product). */
function championLine(p: ProductReport): string {
  const c = championOf(p);
  if (!c?.candidate) return '';
  const calibration = c.calibration?.method && c.calibration.method !== 'none' ? `, ${c.calibration.method}-calibrated` : ', not calibrated';
  return `<p class="champion">Published: <strong>${escape(c.candidate)}</strong>${escape(calibration)}${c.reason ? ` — ${escape(c.reason)}` : ''}.</p>`;
}

function publishedScoresSection(p: ProductReport): string {
  if (!p.deciles || !p.histogram) return '<section class="deciles"><h3>Published scores</h3><p>No published scores.</p></section>';
  const rows = p.deciles
    .map(
      (d) =>
        `<tr data-decile="${d.decile}"><th scope="row">${d.decile}</th><td>${d.minScore === null ? '—' : `${formatScore(d.minScore)} – ${formatScore(d.maxScore!)}`}</td>` +
        `<td>${d.customers.toLocaleString('en-US')}</td><td>${d.buyers.toLocaleString('en-US')}</td><td>${d.rate === null ? '—' : formatPercent(d.rate)}</td><td>${d.lift === null ? '—' : `${d.lift.toFixed(2)} ×`}</td></tr>`,
    )
    .join('');
  const top = p.histogram.at(-1)!.upper;
  const histogram = barChart({
    kind: 'histogram',
    title: `Published scores (${publishedName(p)})`,
    xLabel: 'Score',
    yLabel: 'Customers',
    x: percentAxis(top),
    bars: p.histogram.map((b) => ({
      lower: b.lower,
      upper: b.upper,
      parts: [
        { value: b.buyers, color: '#d62728', label: `${formatPercent(b.lower)} – ${formatPercent(b.upper)} buyers` },
        { value: b.customers - b.buyers, color: '#9ecae1', label: `${formatPercent(b.lower)} – ${formatPercent(b.upper)} non-buyers` },
      ],
    })),
  });
  return [
    '<section class="deciles"><h3>Published scores by decile</h3>',
    '<div class="charts">',
    '<table class="deciles"><thead><tr><th>Decile</th><th>Score range</th><th>Customers</th><th>Buyers</th><th>Purchase rate</th><th>Lift</th></tr></thead>',
    `<tbody>${rows}</tbody></table>`,
    `<figure>${histogram}<figcaption><span class="swatch" style="background:#d62728"></span>buyers <span class="swatch" style="background:#9ecae1"></span>non-buyers</figcaption></figure>`,
    '</div></section>',
  ].join('\n');
}

function audiencesSection(p: ProductReport): string {
  if (!p.audiences) return '<section class="audiences"><h3>Audiences</h3><p>Not published yet: the customers per action appear once the night is published.</p></section>';
  const total = p.audiences.reduce((s, a) => s + a.customers, 0);
  const rows = p.audiences
    .map((a) => `<tr data-action="${escape(a.action)}"><th scope="row">${escape(a.action)}</th><td>${a.customers.toLocaleString('en-US')}</td><td>${total > 0 ? formatPercent(a.customers / total) : '—'}</td></tr>`)
    .join('');
  return [
    '<section class="audiences"><h3>Audiences (customers per action, as published)</h3>',
    `<table class="audiences"><thead><tr><th>Action</th><th>Customers</th><th>Share</th></tr></thead><tbody>${rows}</tbody></table>`,
    '</section>',
  ].join('\n');
}

function trainingSection(p: ProductReport): string {
  if (p.training.length === 0) return '<section class="training"><h3>Training</h3><p>No training history recorded for these models.</p></section>';
  const lastEpoch = Math.max(1, ...p.training.flatMap((m) => m.epochs.map((e) => e.epoch)));
  const epochs: ChartAxis = lastEpoch <= 10
    ? { min: 0, max: lastEpoch, ticks: lastEpoch, format: (v) => String(Math.round(v)) }
    : { min: 0, max: Math.ceil(lastEpoch / 5) * 5, ticks: 5, format: (v) => String(Math.round(v)) };
  const curve = (m: TrainingCurve, i: number, pick: (e: TrainingCurve['epochs'][number]) => number | null): ChartSeries => ({
    name: m.name,
    color: PALETTE[i % PALETTE.length]!,
    dashed: false,
    markers: true,
    points: m.epochs.flatMap((e) => (pick(e) === null ? [] : [[e.epoch, pick(e)!] as [number, number]])),
  });
  const auc = p.training.map((m, i) => curve(m, i, (e) => e.validationAuc));
  const loss = p.training.map((m, i) => curve(m, i, (e) => e.trainLoss));
  const aucs = auc.flatMap((s) => s.points.map(([, v]) => v));
  const aucAxis: ChartAxis = { min: Math.max(0, Math.floor(Math.min(0.5, ...aucs) * 10) / 10), max: Math.min(1, Math.ceil(Math.max(0.5, ...aucs) * 10 + 1e-9) / 10), format: (v) => v.toFixed(2) };
  const lossTop = axisMax(Math.max(0, ...loss.flatMap((s) => s.points.map(([, v]) => v))));
  const rows = p.training
    .map((m) => {
      const best = m.epochs.find((e) => e.epoch === m.bestEpoch);
      return `<tr data-model="${escape(m.name)}"><th scope="row">${escape(m.name)}</th><td>${escape(m.modelVersion)}</td><td>${m.epochs.length}</td><td>${m.bestEpoch}</td><td>${formatMetric(best?.validationAuc ?? null)}</td></tr>`;
    })
    .join('');
  return [
    '<section class="training"><h3>Training curves</h3>',
    `<table class="training"><thead><tr><th>Model</th><th>Version</th><th>Epochs run</th><th>Best epoch (kept)</th><th>Validation AUC there</th></tr></thead><tbody>${rows}</tbody></table>`,
    '<div class="charts">',
    lineChart({ kind: 'training-auc', title: 'Validation AUC by epoch', xLabel: 'Epoch', yLabel: 'Validation AUC', series: auc, x: epochs, y: aucAxis, legend: true }),
    loss.some((s) => s.points.length > 0)
      ? lineChart({ kind: 'training-loss', title: 'Training loss by epoch', xLabel: 'Epoch', yLabel: 'Training loss', series: loss.filter((s) => s.points.length > 0), x: epochs, y: { min: 0, max: lossTop }, legend: true })
      : '',
    '</div></section>',
  ].join('\n');
}

function earlierNightsSection(p: ProductReport, evaluatedOn: string): string {
  if (p.earlierNights.length === 0) return '<section class="history"><h3>Earlier nights</h3><p>No earlier committed night of this account has a report for this product.</p></section>';
  const published = p.entries.find((e) => e.name === p.published) ?? null;
  const row = (cls: string, date: string, name: string | null, auc: number | null, lower: number | null, upper: number | null, n: number, positives: number, on: string, flagged: boolean) =>
    `<tr class="${cls}${flagged ? ' few' : ''}"><th scope="row">${escape(date)}</th><td>${escape(name ?? '—')}</td><td data-metric="auc">${formatMetric(auc)}</td>` +
    `<td>${lower === null || upper === null ? '—' : `${formatMetric(lower)} – ${formatMetric(upper)}`}</td><td>${n.toLocaleString('en-US')}</td><td>${positives.toLocaleString('en-US')}${flagged ? ' (too few)' : ''}</td><td>${escape(on)}</td></tr>`;
  const rows = [
    ...p.earlierNights.map((e) => row('earlier', e.date, e.published, e.auc, e.lower, e.upper, e.n, e.positives, e.evaluatedOn, e.flagged)),
    row('this-night', 'this night', publishedName(p), published?.metrics.auc ?? null, published?.aucCi?.lower ?? null, published?.aucCi?.upper ?? null, p.n, p.positives, evaluatedOn, p.flags.length > 0),
  ].join('');
  const nights = [
    ...p.earlierNights.map((e) => ({ label: e.date.slice(5), auc: e.auc, lower: e.lower, upper: e.upper })),
    { label: 'this night', auc: published?.metrics.auc ?? null, lower: published?.aucCi?.lower ?? null, upper: published?.aucCi?.upper ?? null },
  ];
  const line = (name: string, pick: (n: (typeof nights)[number]) => number | null, dashed: boolean): ChartSeries => ({
    name,
    color: '#1f77b4',
    dashed,
    markers: !dashed,
    points: nights.flatMap((n, i) => (pick(n) === null ? [] : [[i, pick(n)!] as [number, number]])),
  });
  const values = nights.flatMap((n) => [n.auc, n.lower, n.upper]).filter((v): v is number => v !== null);
  const chart = lineChart({
    kind: 'history',
    title: 'Published AUC by night (dashed: 95 % CI)',
    xLabel: 'Night',
    yLabel: 'AUC',
    series: [line('AUC', (n) => n.auc, false), line('95 % CI lower', (n) => n.lower, true), line('95 % CI upper', (n) => n.upper, true)],
    x: { min: -0.5, max: nights.length - 0.5 },
    y: { min: Math.max(0, Math.floor(Math.min(0.5, ...values) * 10) / 10), max: Math.min(1, Math.ceil(Math.max(0.5, ...values) * 10 + 1e-9) / 10), format: (v) => v.toFixed(2) },
    xTickLabels: nights.map((n, i) => [i, n.label] as [number, string]),
  });
  return [
    '<section class="history"><h3>Published AUC on earlier nights</h3>',
    '<div class="charts">',
    `<table class="history"><thead><tr><th>Night</th><th>Published</th><th>AUC</th><th>95 % CI</th><th>Customers</th><th>Positives</th><th>Evaluated on</th></tr></thead><tbody>${rows}</tbody></table>`,
    chart,
    '</div></section>',
  ].join('\n');
}

/** A 0–top axis of scores or rates printed as percentages, with enough decimals for small base rates. */
function percentAxis(top: number): ChartAxis {
  const decimals = top < 0.01 ? 2 : top < 0.1 ? 1 : 0;
  return { min: 0, max: top, format: (v) => `${(v * 100).toFixed(decimals)} %` };
}

function formatPercent(v: number): string {
  const pct = v * 100;
  return `${pct !== 0 && Math.abs(pct) < 1 ? pct.toFixed(2) : pct.toFixed(1)} %`;
}

function formatScore(v: number): string {
  return Number(v.toPrecision(3)).toString();
}

function keyValueTable(rows: [string, string][]): string {
  const body = rows.map(([k, v]) => `<tr><th scope="row">${escape(k)}</th><td>${escape(v)}</td></tr>`).join('');
  return `<table class="kv"><tbody>${body}</tbody></table>`;
}

function statsTable(stats: Record<string, unknown>): string {
  const rows = statRows(stats);
  if (rows.length === 0) return '<p>None given.</p>';
  const body = rows
    .map((r) => `<tr${r.indent ? ' class="sub"' : ''}><th scope="row">${escape(r.label)}</th><td>${escape(r.value)}</td></tr>`)
    .join('');
  return `<table class="kv stats"><tbody>${body}</tbody></table>`;
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
  'h3{font-size:15px;margin:18px 0 4px}table.stats tr.sub th{font-weight:400;padding-left:28px}table.stats td{font-variant-numeric:tabular-nums}',
  'table.deciles td,table.audiences td,table.history td,table.training td{text-align:right;font-variant-numeric:tabular-nums}',
  'tr.this-night th{font-weight:700}tr.few td{color:#8a5a00}figure{margin:0}figcaption{font-size:12px;color:#555;text-align:center}',
].join('');
