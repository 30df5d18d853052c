// Imported first by cli/short-commands.ts, for its side effect: zod without JIT before any schema is built.
import { oneShotProcess } from './one-shot.js';

oneShotProcess();
