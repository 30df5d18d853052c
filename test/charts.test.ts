// Charts drawn on the server (decoded PNG: size, ink, the series' colour), forecasts on known slopes, sparklines.

import { describe, expect, it } from 'vitest';
import {
  CHART_HEIGHT,
  CHART_WIDTH,
  limitSeries,
  renderChartPng,
  renderChartSvg,
} from '../src/charts/chart.js';
import { describeForecast, forecastLimit, rateOf } from '../src/charts/forecast.js';
import { sparkline } from '../src/charts/sparkline.js';
import { decodePng, inkedPixels, pixelsNear } from './helpers/png.js';

const DAY = 86_400_000;
const now = new Date('2026-12-06T12:00:00Z');
const daily = (values: number[]) =>
  values.map((value, i) => ({ at: new Date(now.getTime() - (values.length - 1 - i) * DAY), value }));

describe('chart rendering', () => {
  it('draws a PNG twice the logical size with the line in the first palette colour', async () => {
    const png = await renderChartPng({
      title: 'kasm: database size',
      unit: 'bytes',
      series: [{ name: 'kasm', points: daily([1e9, 1.2e9, 1.5e9, 1.9e9, 2.4e9]) }],
      timeZone: 'Europe/Berlin',
    });
    const image = decodePng(png);
    expect([image.width, image.height]).toEqual([CHART_WIDTH * 2, CHART_HEIGHT * 2]);
    expect(inkedPixels(image)).toBeGreaterThan(5_000);
    expect(pixelsNear(image, [0x25, 0x63, 0xeb], 30)).toBeGreaterThan(500);
  });

  it('names the time zone and the units on the axes, and a limit as a labelled line', async () => {
    const svg = await renderChartSvg({
      title: 'connections',
      unit: 'count',
      series: [{ name: 'active', points: daily([10, 40, 90]) }],
      timeZone: 'America/New_York',
      limit: { value: 100, label: 'max_connections 100' },
    });
    expect(svg).toContain('time (America/New_York)');
    expect(svg).toContain('max_connections 100');
  });

  it('labels byte axes in units, not raw numbers', async () => {
    const svg = await renderChartSvg({
      title: 'size',
      unit: 'bytes',
      series: [{ name: 'db', points: daily([2 * 1024 ** 3, 3 * 1024 ** 3]) }],
    });
    expect(svg).toMatch(/GB/);
    expect(svg).toContain('time (UTC)');
  });

  it('keeps at most five series, summing the smallest into "other"', () => {
    const series = [1, 2, 3, 4, 5, 6, 7].map((n) => ({ name: `t${n}`, points: daily([n, n]) }));
    const kept = limitSeries(series);
    expect(kept.map((s) => s.name)).toEqual(['t7', 't6', 't5', 't4', 'other (3)']);
    expect(kept[4]?.points.map((p) => p.value)).toEqual([6, 6]);
  });
});

describe('forecasts', () => {
  it('finds the day a steady climb reaches its limit', () => {
    const f = forecastLimit(daily([100, 110, 120, 130, 140]), 240, now);
    expect(f.kind).toBe('reaches');
    if (f.kind !== 'reaches') return;
    expect(f.rate.perDay).toBeCloseTo(10, 6);
    expect(f.days).toBeCloseTo(10, 6);
    expect(f.at.toISOString()).toBe('2026-12-16T12:00:00.000Z');
  });

  it('says "no growth" for a flat series and "shrinking" for a falling one, without dividing by zero', () => {
    expect(forecastLimit(daily([50, 50, 50]), 100, now).kind).toBe('no-growth');
    expect(forecastLimit(daily([90, 70, 50]), 100, now).kind).toBe('shrinking');
    const text = describeForecast(forecastLimit(daily([50, 50]), 100, now), 'max_connections', (d) =>
      d.toISOString(),
    );
    expect(text).toBe('max_connections: no growth, not reached at the current rate');
  });

  it('needs two samples at different times', () => {
    expect(forecastLimit(daily([5]), 10, now).kind).toBe('unknown');
    expect(
      rateOf([
        { at: now, value: 1 },
        { at: now, value: 2 },
      ]),
    ).toBeUndefined();
  });

  it('says a limit already passed is reached, and a far one is beyond the horizon', () => {
    expect(forecastLimit(daily([100, 120]), 110, now).kind).toBe('reached');
    expect(forecastLimit(daily([1, 2]), 1e9, now).kind).toBe('beyond-horizon');
  });

  it('counts from now, not from the last sample', () => {
    const later = new Date(now.getTime() + 2 * DAY);
    const f = forecastLimit(daily([0, 10, 20]), 100, later);
    expect(f.kind === 'reaches' && Math.round(f.days)).toBe(6);
  });
});

describe('sparkline', () => {
  it('draws low to high and keeps a flat series level', () => {
    expect(sparkline([1, 2, 3, 4, 5, 6, 7, 8])).toBe('▁▂▃▄▅▆▇█');
    expect(sparkline([3, 3, 3])).toBe('▄▄▄');
    expect(sparkline([])).toBe('');
  });

  it('averages long series into the width', () => {
    const line = sparkline(
      Array.from({ length: 1000 }, (_, i) => i),
      40,
    );
    expect([...line]).toHaveLength(40);
    expect(line.startsWith('▁')).toBe(true);
    expect(line.endsWith('█')).toBe(true);
  });
});
