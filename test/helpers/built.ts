// The built bot (dist/, as `npm run build` makes it) for tests of the Slack HTTP mode, whose
// acknowledging thread is a compiled module beside the surface: app, config and surface from one build.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App } from '../../src/app.js';
import type { RunningSurface } from '../../src/surfaces/types.js';
import { FakeSlack } from '../fakes/slack.js';
import { freePort } from '../setup/postgres.js';

/** A module of the build, typed as its source. */
export async function built<M>(path: string): Promise<M> {
  return (await import(pathToFileURL(resolve('dist/src', path)).href)) as M;
}

export interface BuiltSlackBot {
  app: App;
  fake: FakeSlack;
  surface: RunningSurface | undefined;
  /** Where signed requests go (the receiver's events path). */
  url: string;
  /** Stops the surface, the app and the fake. */
  close(): Promise<void>;
}

/** The built app on `yaml` (its ${VARS} from `vars`) with the Slack surface in HTTP mode against a fake. */
export async function startBuiltSlackBot(options: {
  yaml: string;
  file: string;
  vars: Record<string, string>;
  token: string;
  secret: string;
}): Promise<BuiltSlackBot> {
  const { createApp } = await built<typeof import('../../src/app.js')>('app.js');
  const { loadConfigText } = await built<typeof import('../../src/config/load.js')>('config/load.js');
  const { silentLogger } = await built<typeof import('../../src/core/log.js')>('core/log.js');
  const { startSlack } =
    await built<typeof import('../../src/surfaces/slack/index.js')>('surfaces/slack/index.js');
  const config = loadConfigText(options.yaml, options.file, options.vars);
  const app = await createApp({ config, log: silentLogger() });
  const fake = await FakeSlack.start();
  const port = await freePort();
  const surface = await startSlack({
    app,
    config,
    log: silentLogger(),
    env: {
      SLACK_BOT_TOKEN: options.token,
      SLACK_SIGNING_SECRET: options.secret,
      SLACK_PORT: String(port),
      SLACK_API_URL: fake.apiUrl,
      SLACK_API_RETRIES: '0',
    },
  });
  return {
    app,
    fake,
    surface,
    url: `http://127.0.0.1:${port}/slack/events`,
    async close() {
      await surface?.stop();
      await app.close();
      await fake.close();
    },
  };
}
