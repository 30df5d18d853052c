// The demo's sample databases and the dbops.yaml it writes for them (URLs only as ${VAR} references).
import { ALEMBIC_COMMAND, ALEMBIC_URL_ENV } from './alembic.js';

export const STATE_URL_VARIABLE = 'DBOPS_STATE_URL';

export interface SampleDatabase {
  /** Database and target name; the fixture is fixtures/<name>.sql. */
  name: string;
  /** The application's own login role, which owns the tables as in production. */
  owner: string;
  environment: 'production' | 'staging' | 'development';
  urlVariable: string;
  description: string;
}

export const SAMPLES = [
  {
    name: 'kasm',
    owner: 'kasmapp',
    environment: 'production',
    urlVariable: 'KASM_DATABASE_URL',
    description: 'KASM Workspaces (the kasm_db container)',
  },
  {
    name: 'staging',
    owner: 'exam_user_staging',
    environment: 'staging',
    urlVariable: 'STAGING_DATABASE_URL',
    description: 'Exam platform staging (FastAPI + Alembic)',
  },
  {
    name: 'coder',
    owner: 'coder',
    environment: 'production',
    urlVariable: 'CODER_DATABASE_URL',
    description: 'Coder on ECS with RDS PostgreSQL',
  },
  {
    name: 'capsul',
    owner: 'capsul',
    environment: 'production',
    urlVariable: 'CAPSUL_DATABASE_URL',
    description: 'capsul-flask hub database',
  },
  {
    name: 'activity',
    owner: 'bot_user',
    environment: 'development',
    urlVariable: 'ACTIVITY_DATABASE_URL',
    description: 'Activity challenge Telegram bot',
  },
] as const satisfies readonly SampleDatabase[];

/** The runbook pack each sample database uses (staging is the Alembic-managed exam platform). */
const DEMO_PACKS: Readonly<Record<string, string>> = {
  kasm: 'kasm',
  staging: 'alembic',
  coder: 'coder',
  capsul: 'capsul',
  activity: 'activity',
};

/** Pack settings, as YAML lines under the target. */
function demoSettings(name: string, alembicDir: string): string {
  if (name === 'capsul') return '\n    settings:\n      capsul:\n        expected_schema_version: 21';
  if (name !== 'staging') return '';
  // The exam platform's Alembic project, copied into the demo's directory (see src/demo/alembic).
  return `
    settings:
      alembic:
        command: [${ALEMBIC_COMMAND.join(', ')}]
        cwd: ${JSON.stringify(alembicDir)}
        url_env: ${ALEMBIC_URL_ENV}`;
}

export interface DemoConfigPaths {
  backupsDir: string;
  /** The copied Alembic project of staging. */
  alembicDir: string;
}

export function renderConfig(paths: DemoConfigPaths): string {
  const { backupsDir } = paths;
  const targets = SAMPLES.map(
    (sample) => `  ${sample.name}:
    url: \${${sample.urlVariable}}
    environment: ${sample.environment}
    description: ${JSON.stringify(sample.description)}
    packs: [${DEMO_PACKS[sample.name] ?? ''}]${demoSettings(sample.name, paths.alembicDir)}`,
  ).join('\n');
  return `# dbops demo configuration, written by the demo at start-up and deleted when it stops.
# Connection strings are \${VAR} references only; the demo hands their values to the bot.
state:
  url: \${${STATE_URL_VARIABLE}}

limits:
  statement_timeout: 5s
  lock_timeout: 1s
  row_cap: 200

backups:
  dir: ${JSON.stringify(backupsDir)}

# Who may bind chat channels to targets (/db bind kasm in #inc-kasm).
admin_roles: [dba]

targets:
${targets}

# Made-up Slack (team/user) and Discord ids, so the same people work on every surface.
people:
  alice:
    slack: T0DEMO/U0ALICE
    discord: "900000000000000001"
    cli: alice
    roles: [dba]
  bob:
    slack: T0DEMO/U0BOB
    discord: "900000000000000002"
    cli: bob
    roles: [oncall]
  carol:
    slack: T0DEMO/U0CAROL
    discord: "900000000000000003"
    cli: carol
    roles: [developer]

policy:
  # Developers may read production: read operations are read-only, time-limited and row-capped, and
  # the people who wrote the code are the ones who need to look during an incident. Changing
  # production stays with on-call and DBAs, and the other of the two approves (alice asks, bob
  # approves, and the other way round: a rule nobody can satisfy would leave requests waiting).
  # Ad-hoc SQL (/db sql): reads for on-call and DBAs, writes reviewed like destructive operations.
  production:
    read: [oncall, dba, developer]
    write: [dba]
    request: [oncall, dba]
    approve: [dba, oncall]
    approvals: 1
    sql_read: [oncall, dba]
    sql_write: [dba]
  staging:
    read: [everyone]
    write: [oncall, dba]
    request: [oncall, dba]
    approve: [oncall, dba]
    sql_read: [everyone]
    sql_write: [oncall, dba]
  development:
    read: [everyone]
    write: [everyone]
    request: [everyone]
    approve: [dba, oncall]
    sql_read: [everyone]
    sql_write: [everyone]
`;
}
