// Peak RSS of four concurrent 100,000-row reads rendered for Slack, with and without the result budget:
// node --max-old-space-size=96 bench/result-budget-rss.mjs <superuser URL> <budget rows>  (after npm run build)
const dist = (path) => new URL(`../dist/src/${path}`, import.meta.url).href;
const { TargetPools } = await import(dist('engine/target-db.js'));
const { resultBudget, withResultScope } = await import(dist('core/result-budget.js'));
const { renderResult } = await import(dist('core/render.js'));
const { resultFiles } = await import(dist('surfaces/slack/render.js'));

const [url, budget] = process.argv.slice(2);
if (!url) throw new Error('usage: result-budget-rss.mjs <url> [budget rows]');
if (budget) resultBudget.total = Number(budget);
const limits = {
  statement_timeout: 60,
  lock_timeout: 1,
  row_cap: 100_000,
  pool_max: 8,
  pool_idle: 30,
  connect_timeout: 5,
};
const pools = new TargetPools({ t: { name: 't', url, environment: 'bench', packs: [], limits } });
const SQL =
  "SELECT id::text, md5(id::text) a, md5((id + 1)::text) b, repeat('x', 40) c FROM generate_series(1, 100000) id";
const columns = ['id', 'a', 'b', 'c'].map((key) => ({ key, label: key, kind: 'text' }));
let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 5);
const before = process.memoryUsage().rss;
await Promise.all(
  [1, 2, 3, 4].map(() =>
    withResultScope(async () => {
      const { rows } = await pools.get('t').read((s) => s.cursor(SQL, [], 100_000));
      const result = { headline: 'bench', columns, rows, truncated: false };
      const text = renderResult(result);
      const files = resultFiles(result, 0, { operation: 'bench', target: 't', requestId: 1 });
      await new Promise((r) => setTimeout(r, 200));
      return text.length + files.length;
    }),
  ),
);
clearInterval(sampler);
const mb = (n) => Math.round(n / 1_048_576);
console.log(JSON.stringify({ budgetRows: resultBudget.total, beforeMB: mb(before), peakMB: mb(peak) }));
await pools.closeAll();
