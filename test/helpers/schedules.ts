// Shared setup of the schedule tests: a config with service people, databases, a hand-moved clock.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, createApp } from '../../src/app.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { adminQuery, createDatabase } from './db.js';

export const BASE = `
state:
  url: \${STATE_URL}
limits: { statement_timeout: 5s, lock_timeout: 1s, row_cap: 50, connect_timeout: 2s }
backups: { dir: "\${BACKUPS}" }
targets:
  staging: { url: "\${STAGING_URL}", environment: staging }
  prod:    { url: "\${STAGING_URL}", environment: production }
people:
  alice: { cli: alice, roles: [dba] }
  carol: { cli: carol, roles: [developer] }
  robot: { service: true, roles: [ops] }
  reader: { service: true, roles: [watcher] }
policy:
  staging:    { read: [everyone], write: [ops, dba], request: [dba], approve: [dba] }
  production: { read: [ops, dba], write: [ops, dba], request: [dba], approve: [dba], approve_writes: true }
admin_roles: [dba]
`;

export let env: Record<string, string>;
export let stateName: string;
export const apps: App[] = [];

export function config(schedules: string) {
  return loadConfigText(`${BASE}${schedules}`, 'schedules.yaml', env);
}

export function configProblems(schedules: string): string[] {
  try {
    config(schedules);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

export async function appProblems(schedules: string): Promise<string[]> {
  try {
    apps.push(await createApp({ config: config(schedules), log: silentLogger() }));
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

/** A clock tests move by hand, starting a day ahead of real time (so runs are never stale by the server's). */
export function fakeClock(start: Date) {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    set: (date: Date) => {
      now = date.getTime();
    },
  };
}

export async function runs(schedule: string) {
  return await adminQuery<{
    id: string;
    slot: Date;
    state: string;
    trigger: string;
    started_at: Date | null;
    finished_at: Date | null;
    runner: string | null;
    job_id: string | null;
  }>('SELECT * FROM dbops_schedule_runs WHERE schedule = $1 ORDER BY id', [schedule], stateName);
}

/** Makes the target and state databases and the backups directory of one test file. */
export async function setUpSchedules(): Promise<void> {
  const [staging, state] = await Promise.all([
    createDatabase(
      'sched_target',
      'CREATE TABLE exams (id int primary key); INSERT INTO exams SELECT generate_series(1, 50);',
    ),
    createDatabase('sched_state'),
  ]);
  stateName = state.name;
  env = {
    STATE_URL: state.url,
    STAGING_URL: staging.url,
    BACKUPS: await mkdtemp(join(tmpdir(), 'dbops-sched-')),
  };
}

export async function tearDownSchedules(): Promise<void> {
  await Promise.allSettled(apps.map((a) => a.close()));
}
