// The gateway bot: a discord.js Client whose REST base (and so the gateway URL it is handed by GET
// /gateway/bot) follows DISCORD_API_URL, and the health of its connection. discord.js reconnects and
// resumes by itself; what it cannot recover from (a refused token, disallowed intents) or an outage longer
// than the grace period is reported by problem().
import { once } from 'node:events';
import { Client, DiscordAPIError, Events, GatewayCloseCodes, GatewayIntentBits, Options } from 'discord.js';
import { redactPath } from './api.js';
import { type DiscordSettings, restOptions } from './settings.js';

/**
 * Guilds (channels and threads, so the bot knows where it is) and GuildMessages (`@dbops …`). Not the
 * privileged MessageContent intent: messages that mention the bot carry their content without it.
 */
export const INTENTS = [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages] as const;

export function createGatewayClient(settings: DiscordSettings): Client {
  return new Client({
    intents: [...INTENTS],
    rest: restOptions(settings),
    // For anything sent through discord.js itself; dbops' own bodies set allowed_mentions explicitly.
    allowedMentions: { parse: [], repliedUser: false },
    failIfNotExists: false,
    // dbops reads no message history: keep no messages in memory.
    // Members are not cached (except the bot's own): a cached member keeps the roles of an earlier payload when
    // a later one leaves them out, and roles must come from each interaction's own payload (none if missing).
    makeCache: Options.cacheWithLimits({
      ...Options.DefaultMakeCacheSettings,
      MessageManager: 0,
      GuildMemberManager: { maxSize: 0, keepOverLimit: (member) => member.id === member.client.user.id },
    }),
  });
}

/** Logs in and waits until the client is ready (guilds received); throws with the reason otherwise. */
export async function connectGateway(client: Client, token: string, timeoutMs: number): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const ready = once(client, Events.ClientReady, { signal: abort.signal });
    ready.catch(() => {}); // awaited below; a login failure must not leave it unhandled
    await client.login(token);
    await ready;
  } catch (err) {
    await client.destroy().catch(() => {});
    if (abort.signal.aborted) {
      throw new Error(`Discord: the gateway did not become ready within ${Math.round(timeoutMs / 1000)} s`);
    }
    throw new Error(`Discord: ${describeLoginError(err)}`);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

function describeLoginError(err: unknown): string {
  if (err instanceof DiscordAPIError && err.status === 401) {
    return 'DISCORD_TOKEN was refused (401 Unauthorized): copy the bot token again from the Developer Portal';
  }
  const code = (err as { code?: unknown })?.code;
  if (code === 'TokenInvalid') {
    return 'DISCORD_TOKEN was refused: copy the bot token again from the Developer Portal';
  }
  const message = err instanceof Error ? err.message : String(err);
  return `could not connect: ${redactPath(message)} (check DISCORD_API_URL and the network)`;
}

const CLOSE_ADVICE: Partial<Record<number, string>> = {
  [GatewayCloseCodes.AuthenticationFailed]: 'the bot token was refused; check DISCORD_TOKEN',
  [GatewayCloseCodes.DisallowedIntents]:
    'an intent is not enabled for the application in the Developer Portal',
  [GatewayCloseCodes.InvalidIntents]: 'the intents are invalid',
  [GatewayCloseCodes.ShardingRequired]:
    'the bot is in too many servers for one connection (sharding required)',
  [GatewayCloseCodes.InvalidShard]: 'invalid shard',
  [GatewayCloseCodes.InvalidAPIVersion]: 'the gateway API version is not supported',
};

export interface HealthOptions {
  /** How long a reconnect may take before the bot reports itself unhealthy. */
  graceMs: number;
  now?: () => number;
}

/** Connection state of the gateway, from discord.js' shard events. */
export class GatewayHealth {
  readonly #graceMs: number;
  readonly #now: () => number;
  #fatal: string | undefined;
  #downSince: number | undefined;
  #lastError: string | undefined;

  constructor(client: Client, options: HealthOptions) {
    this.#graceMs = options.graceMs;
    this.#now = options.now ?? Date.now;
    const up = () => {
      this.#downSince = undefined;
      this.#lastError = undefined;
    };
    client.on(Events.ShardReady, up);
    client.on(Events.ShardResume, up);
    client.on(Events.ShardReconnecting, () => {
      this.#downSince ??= this.#now();
    });
    client.on(Events.ShardError, (error) => {
      this.#lastError = redactPath(error.message);
    });
    client.on(Events.ShardDisconnect, (event) => {
      const name = GatewayCloseCodes[event.code] ?? 'closed';
      const advice = CLOSE_ADVICE[event.code] ?? 'discord.js will not reconnect';
      this.#fatal = `the Discord gateway closed with ${event.code} (${name}): ${advice}; restart dbops once it is fixed`;
    });
    client.on(Events.Invalidated, () => {
      this.#fatal = 'the Discord session was invalidated and will not reconnect; restart dbops';
    });
  }

  /** Why the bot cannot take commands, if it cannot. */
  problem(): string | undefined {
    if (this.#fatal) return this.#fatal;
    if (this.#downSince === undefined) return undefined;
    const down = this.#now() - this.#downSince;
    if (down < this.#graceMs) return undefined;
    return `the Discord gateway has been disconnected for ${Math.round(down / 1000)} s and is still reconnecting${this.#lastError ? ` (last error: ${this.#lastError})` : ''}`;
  }
}
