// External programs in one import: the runner (tool-runner.ts), their environment (tool-env.ts) and the
// PostgreSQL client tools (pg-tools.ts).
export * from './pg-tools.js';
export * from './tool-env.js';
export * from './tool-runner.js';
