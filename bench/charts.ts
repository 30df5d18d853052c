// What a chart costs: render time (SVG layout + PNG rasterising) and memory per chart, for one and five series.
// Run: `npx tsc -p bench/tsconfig.json && node --expose-gc dist/bench/charts.js [count]`. Printed, never asserted;
// `measureCharts` is also called by bench.ts so the numbers land in bench/results.json.
import { fileURLToPath } from 'node:url';
import { type ChartSeries, renderChartPng } from '../src/charts/chart.js';

export interface ChartCost {
  series: number;
  points: number;
  charts: number;
  medianMs: number;
  p95Ms: number;
  pngKiB: number;
  /** Resident memory added while rendering, after the first chart loaded the libraries. */
  rssGrowthMiB: number;
  /** The first chart: loading ECharts, resvg and the font. */
  firstMs: number;
}

const HOUR = 3_600_000;

function week(seriesCount: number): ChartSeries[] {
  const end = Date.UTC(2026, 11, 6);
  return Array.from({ length: seriesCount }, (_, s) => ({
    name: `public.table_${s}`,
    points: Array.from({ length: 7 * 24 }, (_, i) => ({
      at: new Date(end - (7 * 24 - i) * HOUR),
      value: 1e9 * (s + 1) + i * 5e6 * (s + 1) + Math.sin(i / 5) * 2e7,
    })),
  }));
}

export async function measureCharts(count = 30): Promise<ChartCost[]> {
  const out: ChartCost[] = [];
  for (const seriesCount of [1, 5]) {
    const series = week(seriesCount);
    const spec = { title: 'kasm: table sizes', unit: 'bytes' as const, series, timeZone: 'UTC' };
    const firstStart = performance.now();
    let png = await renderChartPng(spec);
    const firstMs = performance.now() - firstStart;
    globalThis.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      png = await renderChartPng(spec);
      times.push(performance.now() - started);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }
    times.sort((a, b) => a - b);
    out.push({
      series: seriesCount,
      points: series.reduce((n, s) => n + s.points.length, 0),
      charts: count,
      medianMs: round(times[Math.floor(times.length / 2)] ?? 0),
      p95Ms: round(times[Math.floor(times.length * 0.95)] ?? 0),
      pngKiB: round(png.length / 1024),
      rssGrowthMiB: round((rssPeak - rssBefore) / 1024 / 1024),
      firstMs: round(firstMs),
    });
  }
  return out;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = await measureCharts(Number(process.argv[2] ?? 30));
  console.log('series  points  charts  median ms  p95 ms  first ms  PNG KiB  RSS growth MiB');
  for (const r of rows) {
    console.log(
      [r.series, r.points, r.charts, r.medianMs, r.p95Ms, r.firstMs, r.pngKiB, r.rssGrowthMiB]
        .map((v, i) => String(v).padStart([6, 7, 7, 10, 7, 9, 8, 15][i] ?? 8))
        .join(' '),
    );
  }
}
