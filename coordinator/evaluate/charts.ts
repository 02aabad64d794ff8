/**
 * Inline SVG line charts on the unit square, with no script and no external asset, so that the report
 * stays one self-contained file.
 */

export interface ChartSeries {
  name: string;
  color: string;
  dashed: boolean;
  /** [x, y] in [0, 1]. */
  points: [number, number][];
  /** Draw a dot at each point (reliability curves). */
  markers?: boolean;
}

export interface ChartSpec {
  /** Becomes the SVG's class (`chart <kind>`) and its title. */
  kind: 'roc' | 'gains' | 'calibration';
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** The y = x reference line (chance for ROC and gains, perfect calibration for reliability). */
  diagonalLabel: string;
}

const WIDTH = 340;
const HEIGHT = 300;
const LEFT = 48;
const RIGHT = 14;
const TOP = 26;
const BOTTOM = 42;
const PLOT_W = WIDTH - LEFT - RIGHT;
const PLOT_H = HEIGHT - TOP - BOTTOM;

const x = (v: number): string => (LEFT + clamp01(v) * PLOT_W).toFixed(1);
const y = (v: number): string => (TOP + (1 - clamp01(v)) * PLOT_H).toFixed(1);

export function lineChart(spec: ChartSpec): string {
  const parts: string[] = [];
  parts.push(
    `<svg class="chart ${spec.kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" font-family="system-ui, sans-serif" role="img" aria-label="${escapeXml(spec.title)}">`,
  );
  parts.push(`<title>${escapeXml(spec.title)}</title>`);
  parts.push(`<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">${escapeXml(spec.title)}</text>`);
  for (let t = 0; t <= 5; t++) {
    const v = t / 5;
    parts.push(`<line x1="${x(v)}" y1="${y(0)}" x2="${x(v)}" y2="${y(1)}" stroke="#e4e4e4"/>`);
    parts.push(`<line x1="${x(0)}" y1="${y(v)}" x2="${x(1)}" y2="${y(v)}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${x(v)}" y="${(TOP + PLOT_H + 14).toFixed(1)}" text-anchor="middle" font-size="10">${v.toFixed(1)}</text>`);
    parts.push(`<text x="${LEFT - 6}" y="${(Number(y(v)) + 3).toFixed(1)}" text-anchor="end" font-size="10">${v.toFixed(1)}</text>`);
  }
  parts.push(`<rect x="${LEFT}" y="${TOP}" width="${PLOT_W}" height="${PLOT_H}" fill="none" stroke="#888"/>`);
  parts.push(
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="#999" stroke-dasharray="2 3"><title>${escapeXml(spec.diagonalLabel)}</title></line>`,
  );
  parts.push(`<text x="${LEFT + PLOT_W / 2}" y="${HEIGHT - 8}" text-anchor="middle" font-size="11">${escapeXml(spec.xLabel)}</text>`);
  parts.push(
    `<text transform="translate(13 ${TOP + PLOT_H / 2}) rotate(-90)" text-anchor="middle" font-size="11">${escapeXml(spec.yLabel)}</text>`,
  );
  for (const s of spec.series) {
    if (s.points.length === 0) continue;
    const path = s.points.map(([px, py]) => `${x(px)},${y(py)}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 3"' : '';
    parts.push(
      `<polyline class="series" data-series="${escapeXml(s.name)}" points="${path}" fill="none" stroke="${s.color}" stroke-width="1.8"${dash}><title>${escapeXml(s.name)}</title></polyline>`,
    );
    if (s.markers) {
      for (const [px, py] of s.points) parts.push(`<circle cx="${x(px)}" cy="${y(py)}" r="2.6" fill="${s.color}"/>`);
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

export function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}
