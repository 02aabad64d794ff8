/**
 * Inline SVG charts (lines and bars), with no script and no external asset, so that the report stays one
 * self-contained file. Each axis runs over its own range: the unit interval for ROC and gains, the scores'
 * own range for reliability and histograms (see axisMax), epochs for training curves.
 */

export interface ChartSeries {
  name: string;
  color: string;
  dashed: boolean;
  /** [x, y] in the chart's axis ranges (points outside are clamped to the frame). */
  points: [number, number][];
  /** Draw a dot at each point (reliability curves). */
  markers?: boolean;
}

export interface ChartAxis {
  min: number;
  max: number;
  /** How a tick's value prints. @default up to 3 significant digits */
  format?: (v: number) => string;
  /** Grid lines and labels, evenly spaced from min to max. @default 5 */
  ticks?: number;
}

export interface ChartSpec {
  /** Becomes the SVG's class (`chart <kind>`). */
  kind: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** @default 0 to 1 */
  x?: ChartAxis;
  /** @default 0 to 1 */
  y?: ChartAxis;
  /** The y = x reference line (chance for ROC and gains, perfect calibration for reliability); none when absent. */
  diagonalLabel?: string;
  /** A legend of the series' names under the title. @default false */
  legend?: boolean;
  /** Labels at given x values in place of the x axis's tick labels (e.g. dates). @default the axis's ticks */
  xTickLabels?: [number, string][];
}

export interface BarChartSpec {
  kind: string;
  title: string;
  xLabel: string;
  yLabel: string;
  /** Bars from lower to upper on the x axis; `parts` stack from the bottom (e.g. buyers under non-buyers). */
  bars: { lower: number; upper: number; parts: { value: number; color: string; label: string }[] }[];
  x: ChartAxis;
}

const WIDTH = 340;
const HEIGHT = 300;
const LEFT = 52;
const RIGHT = 14;
const TOP = 26;
const BOTTOM = 42;
const PLOT_W = WIDTH - LEFT - RIGHT;
const PLOT_H = HEIGHT - TOP - BOTTOM;
const UNIT: ChartAxis = { min: 0, max: 1, format: (v) => v.toFixed(1) };

/** Maps values of an axis to pixels along a span, clamping to the frame. */
function scale(axis: ChartAxis, from: number, span: number, flip: boolean): (v: number) => number {
  const width = axis.max - axis.min || 1;
  return (v: number) => {
    const t = Math.min(1, Math.max(0, (v - axis.min) / width));
    return from + (flip ? 1 - t : t) * span;
  };
}

const px = (v: number): string => v.toFixed(1);

export function defaultTickFormat(v: number): string {
  return Number(v.toPrecision(3)).toString();
}

/** The frame, grid, tick labels and axis titles shared by both kinds of chart. */
function frame(kind: string, title: string, xLabel: string, yLabel: string, xAxis: ChartAxis, yAxis: ChartAxis): string[] {
  const x = scale(xAxis, LEFT, PLOT_W, false);
  const y = scale(yAxis, TOP, PLOT_H, true);
  const parts: string[] = [];
  parts.push(
    `<svg class="chart ${escapeXml(kind)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" font-family="system-ui, sans-serif" role="img" aria-label="${escapeXml(title)}">`,
  );
  parts.push(`<title>${escapeXml(title)}</title>`);
  parts.push(`<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">${escapeXml(title)}</text>`);
  for (const [axis, vertical] of [[xAxis, true], [yAxis, false]] as const) {
    const ticks = axis.ticks ?? 5;
    const format = axis.format ?? defaultTickFormat;
    for (let t = 0; ticks > 0 && t <= ticks; t++) {
      const v = axis.min + ((axis.max - axis.min) * t) / ticks;
      if (vertical) {
        parts.push(`<line x1="${px(x(v))}" y1="${px(y(yAxis.min))}" x2="${px(x(v))}" y2="${px(y(yAxis.max))}" stroke="#e4e4e4"/>`);
        parts.push(`<text class="tick x" x="${px(x(v))}" y="${px(TOP + PLOT_H + 14)}" text-anchor="middle" font-size="10">${escapeXml(format(v))}</text>`);
      } else {
        parts.push(`<line x1="${px(x(xAxis.min))}" y1="${px(y(v))}" x2="${px(x(xAxis.max))}" y2="${px(y(v))}" stroke="#e4e4e4"/>`);
        parts.push(`<text class="tick y" x="${LEFT - 6}" y="${px(y(v) + 3)}" text-anchor="end" font-size="10">${escapeXml(format(v))}</text>`);
      }
    }
  }
  parts.push(`<rect x="${LEFT}" y="${TOP}" width="${PLOT_W}" height="${PLOT_H}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${LEFT + PLOT_W / 2}" y="${HEIGHT - 8}" text-anchor="middle" font-size="11">${escapeXml(xLabel)}</text>`);
  parts.push(`<text transform="translate(13 ${TOP + PLOT_H / 2}) rotate(-90)" text-anchor="middle" font-size="11">${escapeXml(yLabel)}</text>`);
  return parts;
}

export function lineChart(spec: ChartSpec): string {
  const xAxis = spec.x ?? UNIT;
  const yAxis = spec.y ?? UNIT;
  const x = scale(xAxis, LEFT, PLOT_W, false);
  const y = scale(yAxis, TOP, PLOT_H, true);
  const parts = frame(spec.kind, spec.title, spec.xLabel, spec.yLabel, spec.xTickLabels ? { ...xAxis, ticks: 0 } : xAxis, yAxis);
  for (const [v, label] of spec.xTickLabels ?? []) {
    parts.push(`<text class="tick x" x="${px(x(v))}" y="${px(TOP + PLOT_H + 14)}" text-anchor="middle" font-size="10">${escapeXml(label)}</text>`);
  }
  if (spec.diagonalLabel !== undefined) {
    const lo = Math.max(xAxis.min, yAxis.min);
    const hi = Math.min(xAxis.max, yAxis.max);
    parts.push(
      `<line class="diagonal" x1="${px(x(lo))}" y1="${px(y(lo))}" x2="${px(x(hi))}" y2="${px(y(hi))}" stroke="#999" stroke-dasharray="2 3"><title>${escapeXml(spec.diagonalLabel)}</title></line>`,
    );
  }
  for (const s of spec.series) {
    if (s.points.length === 0) continue;
    const path = s.points.map(([vx, vy]) => `${px(x(vx))},${px(y(vy))}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 3"' : '';
    parts.push(
      `<polyline class="series" data-series="${escapeXml(s.name)}" points="${path}" fill="none" stroke="${s.color}" stroke-width="1.8"${dash}><title>${escapeXml(s.name)}</title></polyline>`,
    );
    if (s.markers || s.points.length === 1) {
      for (const [vx, vy] of s.points) parts.push(`<circle cx="${px(x(vx))}" cy="${px(y(vy))}" r="2.6" fill="${s.color}"/>`);
    }
  }
  if (spec.legend) {
    spec.series.forEach((s, i) => {
      const ly = TOP + 12 + i * 13;
      parts.push(`<line x1="${LEFT + 8}" y1="${ly - 3}" x2="${LEFT + 24}" y2="${ly - 3}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 2"' : ''}/>`);
      parts.push(`<text x="${LEFT + 28}" y="${ly}" font-size="10">${escapeXml(s.name)}</text>`);
    });
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Bars on a count axis from 0 to a little above the tallest stack. */
export function barChart(spec: BarChartSpec): string {
  const tallest = Math.max(0, ...spec.bars.map((b) => b.parts.reduce((s, p) => s + p.value, 0)));
  const yAxis: ChartAxis = { min: 0, max: axisMax(tallest, { headroom: 1.05, floor: 1 }), format: (v) => Number(v.toPrecision(3)).toLocaleString('en-US') };
  const x = scale(spec.x, LEFT, PLOT_W, false);
  const y = scale(yAxis, TOP, PLOT_H, true);
  const parts = frame(spec.kind, spec.title, spec.xLabel, spec.yLabel, spec.x, yAxis);
  for (const b of spec.bars) {
    let base = 0;
    for (const part of b.parts) {
      if (part.value > 0) {
        const top = y(base + part.value);
        const left = x(b.lower);
        parts.push(
          `<rect class="bar" x="${px(left + 0.5)}" y="${px(top)}" width="${px(Math.max(0.5, x(b.upper) - left - 1))}" height="${px(y(base) - top)}" fill="${part.color}"><title>${escapeXml(`${part.label}: ${part.value.toLocaleString('en-US')}`)}</title></rect>`,
        );
      }
      base += part.value;
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

/**
 * The top of an axis that shows values up to `max`: `max` × headroom rounded up to 1, 1.2, 1.5, 2, 2.5,
 * 3, 4, 5, 6 or 8 × a power of ten, so that ticks at fifths stay readable; never above `cap`, and `floor`
 * when max is 0 or not a number (an axis needs a span).
 */
export function axisMax(max: number, o: { headroom?: number; cap?: number; floor?: number } = {}): number {
  const headroom = o.headroom ?? 1.1;
  const cap = o.cap ?? Infinity;
  const floor = o.floor ?? 1;
  if (!(max > 0) || !Number.isFinite(max)) return Math.min(cap, floor);
  const target = max * headroom;
  const power = 10 ** Math.floor(Math.log10(target));
  const step = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].find((s) => s * power >= target * (1 - 1e-12))!;
  return Math.min(cap, Number((step * power).toPrecision(12)));
}

export function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}
