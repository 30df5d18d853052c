// The Discord surface's settings, read from the environment handed down by cli.ts (never process.env).
import type { RESTOptions } from 'discord.js';

export interface DiscordSettings {
  token: string;
  /** The application (client) id; interactions carry their own, so only registration needs it. */
  applicationId: string | undefined;
  /** REST base without the version, e.g. `https://discord.com/api` (a proxy, or a fake in tests). */
  apiUrl: string | undefined;
  /** How often @discordjs/rest retries a 5xx or timed-out request (its default is 3). */
  restRetries: number | undefined;
}

const SNOWFLAKE = /^\d{15,25}$/;

/** undefined when DISCORD_TOKEN is absent: the surface is not configured. Throws on malformed values. */
export function readDiscordSettings(
  env: Readonly<Record<string, string | undefined>>,
): DiscordSettings | undefined {
  const token = env.DISCORD_TOKEN?.trim();
  if (!token) return undefined;
  const applicationId = env.DISCORD_APPLICATION_ID?.trim() || undefined;
  if (applicationId !== undefined && !SNOWFLAKE.test(applicationId)) {
    throw new Error('DISCORD_APPLICATION_ID must be the numeric application id from the Developer Portal');
  }
  const apiUrl = env.DISCORD_API_URL?.trim().replace(/\/+$/, '') || undefined;
  if (apiUrl !== undefined && !/^https?:\/\/[^/]+/.test(apiUrl)) {
    throw new Error('DISCORD_API_URL must be an http(s) URL such as https://discord.com/api');
  }
  const retriesText = env.DISCORD_REST_RETRIES?.trim();
  let restRetries: number | undefined;
  if (retriesText) {
    restRetries = Number(retriesText);
    if (!Number.isInteger(restRetries) || restRetries < 0 || restRetries > 10) {
      throw new Error('DISCORD_REST_RETRIES must be a whole number from 0 to 10');
    }
  }
  return { token: token.replace(/^Bot\s+/i, ''), applicationId, apiUrl, restRetries };
}

/** Options for @discordjs/rest: the API base (and so the gateway URL it is given) and retries. */
export function restOptions(settings: DiscordSettings): Partial<RESTOptions> {
  return {
    version: '10',
    ...(settings.apiUrl !== undefined ? { api: settings.apiUrl } : {}),
    ...(settings.restRetries !== undefined ? { retries: settings.restRetries } : {}),
  };
}

/** Where attachments may be downloaded from: Discord's CDN, and the API's own host when it is a proxy or fake. */
export function attachmentOrigins(settings: DiscordSettings): string[] {
  const origins = ['https://cdn.discordapp.com', 'https://media.discordapp.net'];
  if (settings.apiUrl !== undefined) origins.push(new URL(settings.apiUrl).origin);
  return origins;
}
