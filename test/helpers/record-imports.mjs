// Loaded with `node --import`: records every module the process resolves into $DBOPS_IMPORT_LOG, one URL a
// line, so a test can tell which packages a command loaded (ESM has no list of loaded modules to read):
// ES imports through module hooks, require() (CommonJS, and the bundled commands' script) through the
// CommonJS resolver.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';

const file = process.env.DBOPS_IMPORT_LOG;
register('./record-imports-hooks.mjs', import.meta.url, { data: { file } });

const Module = createRequire(import.meta.url)('node:module');
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function recorded(...args) {
  const resolved = resolveFilename.apply(this, args);
  if (file && typeof resolved === 'string' && isAbsolute(resolved))
    appendFileSync(file, `${pathToFileURL(resolved).href}\n`);
  return resolved;
};
