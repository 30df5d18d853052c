// The runbook catalog: every operation dbops offers, as an explicit list the core validates at start-up.
import killIdle from './kill-idle.js';
import sizes from './sizes.js';

export const catalog = [sizes, killIdle] as const;
