// The short-lived commands in one module: scripts/bundle-cli.mjs makes dist/src/short-commands.cjs of it,
// which cli/code-cache.ts runs through V8's code cache (tsc's modules are the fallback without it).
import './one-shot-setup.js';

export { auditExport } from './audit-export.js';
export { checkConfig } from './check-config.js';
export { consoleCommand } from './console.js';
export { exec } from './exec.js';
