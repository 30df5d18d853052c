// Line charts drawn on the server: ECharts renders SVG without a DOM, resvg rasterises it to PNG with a shipped font.
//
// Why these libraries: ECharts' string-based SSR needs no browser, canvas or JSDOM, and lays out time axes,
// ticks and legends better than code we would write; resvg is a self-contained rasteriser (no system fonts,
// no network) whose platform binary comes through npm. The DejaVu font ships in an npm package, so text
// renders the same on a bare machine, in CI and in the image.

import { createRequire } from 'node:module';
import { formatBytes, formatCount } from '../core/render.js';

export type ChartUnit = 'bytes' | 'count' | 'percent' | 'seconds';

export interface ChartPoint {
  at: Date;
  value: number;
}

export interface ChartSeries {
  name: string;
  points: readonly ChartPoint[];
}

export interface ChartSpec {
  title: string;
  unit: ChartUnit;
  series: readonly ChartSeries[];
  /** IANA zone the time axis is labelled in; its name is printed under the axis. */
  timeZone?: string;
  /** A horizontal line such as max_connections or the wraparound limit. */
  limit?: { value: number; label: string };
}

/** Logical size; the PNG is drawn at twice this so phones show it sharp. */
export const CHART_WIDTH = 800;
export const CHART_HEIGHT = 450;
const SCALE = 2;
/** A phone shows five lines apart; more becomes noise, so the rest are summed into "other". */
export const MAX_SERIES = 5;
const FONT = 'DejaVu Sans';
const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#6b7280'];

/** The value as a person reads it on the axis: 1.5 GB, 12,300, 97.5%, 4m. */
export function formatUnit(value: number, unit: ChartUnit): string {
  switch (unit) {
    case 'bytes':
      return formatBytes(value);
    case 'percent':
      return `${Math.round(value * 10) / 10}%`;
    case 'seconds':
      return value >= 120 ? `${Math.round(value / 60)}m` : `${Math.round(value * 10) / 10}s`;
    default:
      return formatCount(Math.round(value));
  }
}

/** At most MAX_SERIES series: the largest by their last value, the others summed point by point as "other". */
export function limitSeries(series: readonly ChartSeries[]): ChartSeries[] {
  if (series.length <= MAX_SERIES) return [...series];
  const last = (s: ChartSeries) => s.points.at(-1)?.value ?? 0;
  const ranked = [...series].sort((a, b) => last(b) - last(a));
  const kept = ranked.slice(0, MAX_SERIES - 1);
  const sums = new Map<number, number>();
  for (const s of ranked.slice(MAX_SERIES - 1)) {
    for (const p of s.points) sums.set(p.at.getTime(), (sums.get(p.at.getTime()) ?? 0) + p.value);
  }
  const other = [...sums.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([at, value]) => ({ at: new Date(at), value }));
  return [...kept, { name: `other (${ranked.length - kept.length})`, points: other }];
}

function axisTime(ms: number, zone: string, spanMs: number): string {
  const options: Intl.DateTimeFormatOptions =
    spanMs > 2 * 86_400_000
      ? { timeZone: zone, month: 'short', day: 'numeric' }
      : { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  return new Intl.DateTimeFormat('en-GB', options).format(new Date(ms));
}

type EchartsCore = typeof import('echarts/core');
let echartsReady: Promise<EchartsCore> | undefined;

/** Loaded on first use: the chart code is ~1 MB of JavaScript that no other command needs. */
function loadEcharts(): Promise<EchartsCore> {
  echartsReady ??= (async () => {
    const [core, charts, components, renderers] = await Promise.all([
      import('echarts/core'),
      import('echarts/charts'),
      import('echarts/components'),
      import('echarts/renderers'),
    ]);
    core.use([
      charts.LineChart,
      components.GridComponent,
      components.TitleComponent,
      components.LegendComponent,
      components.MarkLineComponent,
      renderers.SVGRenderer,
    ]);
    return core;
  })();
  return echartsReady;
}

/** The chart as an SVG document (what the PNG is rasterised from). */
export async function renderChartSvg(spec: ChartSpec): Promise<string> {
  const echarts = await loadEcharts();
  const zone = spec.timeZone ?? 'UTC';
  const series = limitSeries(spec.series);
  const times = series.flatMap((s) => s.points.map((p) => p.at.getTime()));
  const span = times.length > 0 ? Math.max(...times) - Math.min(...times) : 0;
  const chart = echarts.init(null, null, {
    renderer: 'svg',
    ssr: true,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
  });
  try {
    chart.setOption({
      animation: false,
      backgroundColor: '#ffffff',
      color: PALETTE,
      textStyle: { fontFamily: FONT, fontSize: 16 },
      title: {
        text: spec.title,
        left: 12,
        top: 8,
        textStyle: { fontFamily: FONT, fontSize: 20, fontWeight: 'bold' },
      },
      // Under the title; server-side text measuring underestimates DejaVu's width, hence the wide gap.
      legend:
        series.length > 1
          ? {
              top: 44,
              left: 12,
              // Measured narrower than DejaVu draws: wrap early so no name runs off the picture.
              right: 200,
              itemGap: 36,
              textStyle: { fontFamily: FONT, fontSize: 15 },
              itemWidth: 18,
            }
          : { show: false },
      grid: {
        left: 16,
        right: 28,
        // Room for the legend: one line for up to three series, two beyond (it wraps within the width).
        top: series.length > 3 ? 124 : series.length > 1 ? 96 : 56,
        bottom: 56,
        outerBoundsMode: 'same',
        outerBoundsContain: 'all',
      },
      xAxis: {
        type: 'time',
        name: `time (${zone})`,
        nameLocation: 'middle',
        nameGap: 30,
        nameTextStyle: { fontFamily: FONT, fontSize: 14 },
        axisLabel: {
          fontFamily: FONT,
          fontSize: 15,
          hideOverlap: true,
          formatter: (v: number) => axisTime(v, zone, span),
        },
        splitNumber: 5,
      },
      yAxis: {
        type: 'value',
        scale: spec.unit !== 'percent',
        // A limit is drawn even when far above the data: the distance to it is the point of the chart.
        ...(spec.limit
          ? { max: (extent: { max: number }) => Math.max(extent.max, (spec.limit?.value ?? 0) * 1.05) }
          : {}),
        axisLabel: { fontFamily: FONT, fontSize: 15, formatter: (v: number) => formatUnit(v, spec.unit) },
      },
      series: series.map((s, i) => ({
        name: s.name,
        type: 'line',
        showSymbol: s.points.length < 30,
        lineStyle: { width: 3 },
        data: s.points.map((p) => [p.at.getTime(), p.value]),
        ...(i === 0 && spec.limit
          ? {
              markLine: {
                symbol: 'none',
                silent: true,
                lineStyle: { type: 'dashed', color: '#dc2626', width: 2 },
                label: {
                  formatter: spec.limit.label,
                  fontFamily: FONT,
                  fontSize: 14,
                  position: 'insideEndTop',
                },
                data: [{ yAxis: spec.limit.value }],
              },
            }
          : {}),
      })),
    });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

const requireFromHere = createRequire(import.meta.url);

/** The chart as a PNG, CHART_WIDTH×CHART_HEIGHT drawn at twice the size. */
export async function renderChartPng(spec: ChartSpec): Promise<Buffer> {
  const svg = await renderChartSvg(spec);
  const { Resvg } = await import('@resvg/resvg-js');
  const font = requireFromHere.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf');
  const bold = requireFromHere.resolve('dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf');
  const image = new Resvg(svg, {
    background: '#ffffff',
    fitTo: { mode: 'zoom', value: SCALE },
    font: { fontFiles: [font, bold], loadSystemFonts: false, defaultFontFamily: FONT },
  }).render();
  return image.asPng();
}
