// Bundles the dbops command (run by `npm run build` after tsc): dist/src/cli.js becomes one small entry
// with a few chunks (usage, help), and exec, console, check-config and audit export one script beside it
// (short-commands.cjs, compiled through V8's code cache: src/cli/code-cache.ts), instead of ~1,000
// modules. `start`, `demo`, `discord register` and `pack` stay tsc's unbundled modules (loaded by path on
// demand: worker threads and fixture files sit beside them), and so do packages with native or wasm
// parts, chat SDKs and anything loaded lazily.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'src');

/** Pure-JS packages the short commands load: inlined (zod alone is ~270 ES modules). */
const INLINED = new Set([
  'zod',
  'yaml',
  'pg',
  'pg-pool',
  'pg-protocol',
  'pg-types',
  'pg-connection-string',
  'pg-int8',
  'pgpass',
  'split2',
  'postgres-array',
  'postgres-bytea',
  'postgres-date',
  'postgres-interval',
  'xtend',
  'pg-cursor',
  'pg-copy-streams',
  'obuf',
  'csv-parse',
  'croner',
  // pino without its transports' worker machinery (thread-stream stays a file: it finds its worker
  // beside itself), which dbops never starts: its logs go to a file descriptor.
  'pino',
  '@pinojs/redact',
  'atomic-sleep',
  'on-exit-leak-free',
  'pino-std-serializers',
  'process-warning',
  'quick-format-unescaped',
  'safe-stable-stringify',
  'sonic-boom',
]);

/**
 * What cli.ts loads by path instead of from its chunks: start, demo, discord register and pack (long-running
 * or rare, with files found beside their modules) as tsc's modules, and the short-lived commands, which
 * come from short-commands.cjs (below) and fall back to tsc's modules only without it.
 */
const UNBUNDLED_COMMANDS = new Set([
  './cli/start.js',
  './cli/demo.js',
  './cli/discord.js',
  './packs/pack-test.js',
  './cli/short-commands.js',
]);

/** The pack loader's sources: a pack cache written by another loader is never reused (src/packs/cache.ts). */
const LOADER_SOURCES = ['load.ts', 'schema.ts', 'named-params.ts', 'examples.ts', 'args.ts', 'cache.ts'];

function loaderHash() {
  const hash = createHash('sha256');
  for (const name of LOADER_SOURCES) {
    hash.update(`loader ${name}\0`);
    hash.update(readFileSync(join(root, 'src', 'packs', name)));
  }
  return hash.digest('hex');
}

function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const externals = {
  name: 'dbops-externals',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      if (args.path.startsWith('.') || args.path.startsWith('/')) {
        // cli.ts hands these commands to tsc's modules next to it in dist/src.
        if (args.importer.endsWith(join('src', 'cli.ts')) && UNBUNDLED_COMMANDS.has(args.path))
          return { path: args.path, external: true };
        return undefined;
      }
      return INLINED.has(packageName(args.path)) ? undefined : { path: args.path, external: true };
    });
  },
};

/**
 * Two start-up costs of inlined packages that a CLI on Node never needs, cut at bundle time (the build
 * fails if the text they replace is gone, e.g. after an upgrade, rather than silently keeping the cost):
 * - pg asks whether it runs in a Cloudflare Worker by constructing a `Response`, which makes Node 20 load
 *   its whole fetch implementation (undici, ~20 ms of CPU) on every start;
 * - zod's namespace carries ~40 translations of its messages (~350 KB to compile); dbops uses English,
 *   which zod registers from locales/en.js itself, so `z.locales` keeps only `en`.
 */
const trims = {
  name: 'dbops-trims',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const probe = 'if (isCloudflareRuntime()) {';
      if (!text.includes(probe))
        throw new Error(`${args.path}: "${probe}" not found; update scripts/bundle-cli.mjs`);
      return { contents: text.replace(probe, 'if (false) {'), loader: 'js' };
    });
    b.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const probe = 'export { default as en } from "./en.js";';
      if (!text.includes(probe))
        throw new Error(`${args.path}: "${probe}" not found; update scripts/bundle-cli.mjs`);
      return { contents: probe, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

// The chunks of an earlier build go first (their names carry a hash).
for (const file of readdirSync(outdir)) {
  if (/^chunk-[A-Z0-9]+\.js(\.map)?$/.test(file)) rmSync(join(outdir, file));
}

const shared = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
  // Identifiers keep their names (stack traces stay readable; source maps beside the files).
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [externals, trims],
  define: { __DBOPS_PACK_LOADER_HASH__: JSON.stringify(loaderHash()) },
};

// exec, console, check-config and audit export as one CommonJS script, which cli/code-cache.ts compiles
// with V8's code cache (Node 20 keeps none for ES modules). import() of a package becomes require()
// (Node >= 20.19 requires ES modules too), and import.meta.url the script's own URL.
await build({
  ...shared,
  entryPoints: [join(root, 'src', 'cli', 'short-commands.ts')],
  outfile: join(outdir, 'short-commands.cjs'),
  format: 'cjs',
  supported: { 'dynamic-import': false },
  define: { ...shared.define, 'import.meta.url': '__dbopsModuleUrl' },
  banner: { js: 'var __dbopsModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});

// The command itself: an ES module entry and the chunks it shares (help, usage) beside it. It names the
// script above by its hash, the key of the script's compiled code (src/cli/code-cache.ts).
const scriptHash = createHash('sha256')
  .update(readFileSync(join(outdir, 'short-commands.cjs')))
  .digest('hex');
await build({
  ...shared,
  define: { ...shared.define, __DBOPS_SHORT_COMMANDS_SHA256__: JSON.stringify(scriptHash) },
  entryPoints: { cli: join(root, 'src', 'cli.ts') },
  outdir,
  splitting: true,
  format: 'esm',
  chunkNames: 'chunk-[hash]',
  // Inlined CommonJS packages require Node built-ins (and pg its optional parts): a real require.
  banner: {
    js: "import { createRequire as __dbopsCreateRequire } from 'node:module';\nconst require = __dbopsCreateRequire(import.meta.url);",
  },
});
