// Loaded with `node --import`: records every module URL the process resolves into $DBOPS_IMPORT_LOG,
// so a test can tell which packages a command loaded (ESM has no list of loaded modules to read).
import { register } from 'node:module';

register('./record-imports-hooks.mjs', import.meta.url, { data: { file: process.env.DBOPS_IMPORT_LOG } });
