// The Slack surface's settings, read from the environment handed down by cli.ts (never process.env here).

export type SlackMode = 'socket' | 'http';

export interface SlackSettings {
  mode: SlackMode;
  botToken: string;
  /** Socket Mode: the app-level token (`xapp-…`, scope connections:write). */
  appToken?: string;
  /** HTTP mode: verifies every request Slack sends. */
  signingSecret?: string;
  /** HTTP mode: where the Request URL (`…/slack/events`) is served. */
  port: number;
  /** Web API base, ending in `/`; Socket Mode asks it for its WebSocket URL (apps.connections.open). */
  apiUrl: string;
  /** Retries of a failed or rate-limited Web API call (0 in tests, so failures are fast). */
  apiRetries: number;
}

export const DEFAULT_API_URL = 'https://slack.com/api/';
const DEFAULT_PORT = 3000;
const DEFAULT_RETRIES = 3;

/** Thrown for a Slack configuration that cannot work; the message names the variable and the fix. */
export class SlackSettingsError extends Error {
  override readonly name = 'SlackSettingsError';
}

type Env = Readonly<Record<string, string | undefined>>;

function value(env: Env, name: string): string | undefined {
  const text = env[name]?.trim();
  return text ? text : undefined;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const text = value(env, name);
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new SlackSettingsError(`${name}: expected a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/** undefined when SLACK_BOT_TOKEN is absent: the Slack surface is simply not configured. */
export function readSlackSettings(env: Env): SlackSettings | undefined {
  const botToken = value(env, 'SLACK_BOT_TOKEN');
  if (!botToken) return undefined;
  if (!botToken.startsWith('xoxb-')) {
    throw new SlackSettingsError(
      'SLACK_BOT_TOKEN: expected the bot token (xoxb-…) from the app’s "OAuth & Permissions" page',
    );
  }
  const appToken = value(env, 'SLACK_APP_TOKEN');
  const signingSecret = value(env, 'SLACK_SIGNING_SECRET');
  const requested = value(env, 'SLACK_MODE')?.toLowerCase();
  if (requested !== undefined && requested !== 'socket' && requested !== 'http') {
    throw new SlackSettingsError(`SLACK_MODE: expected "socket" or "http", got "${requested}"`);
  }
  const mode: SlackMode = requested ?? (appToken ? 'socket' : 'http');
  if (mode === 'socket') {
    if (!appToken) {
      throw new SlackSettingsError(
        'SLACK_APP_TOKEN is missing: Socket Mode needs an app-level token (xapp-…, scope connections:write); for HTTP mode set SLACK_MODE=http and SLACK_SIGNING_SECRET',
      );
    }
    if (!appToken.startsWith('xapp-')) {
      throw new SlackSettingsError(
        'SLACK_APP_TOKEN: expected an app-level token (xapp-…) from the app’s "Basic Information" page',
      );
    }
  }
  if (mode === 'http' && !signingSecret) {
    throw new SlackSettingsError(
      'SLACK_SIGNING_SECRET is missing: HTTP mode verifies every request with it; or set SLACK_APP_TOKEN for Socket Mode',
    );
  }
  const apiUrl = value(env, 'SLACK_API_URL') ?? DEFAULT_API_URL;
  let parsed: URL;
  try {
    parsed = new URL(apiUrl);
  } catch {
    throw new SlackSettingsError(`SLACK_API_URL: expected a URL such as ${DEFAULT_API_URL}, got "${apiUrl}"`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new SlackSettingsError(`SLACK_API_URL: expected an http(s) URL, got "${apiUrl}"`);
  }
  return {
    mode,
    botToken,
    ...(mode === 'socket' && appToken ? { appToken } : {}),
    ...(mode === 'http' && signingSecret ? { signingSecret } : {}),
    port: integer(env, 'SLACK_PORT', DEFAULT_PORT, 1, 65535),
    apiUrl: apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`,
    apiRetries: integer(env, 'SLACK_API_RETRIES', DEFAULT_RETRIES, 0, 10),
  };
}

/** Where files shared in Slack are downloaded from (url_private_download), and the API's own host for a proxy or fake. */
export function fileOrigins(apiUrl: string): string[] {
  const origins = ['https://files.slack.com'];
  const own = new URL(apiUrl).origin;
  if (own !== 'https://slack.com') origins.push(own);
  return origins;
}
