// A local fake Discord for the test suite: the REST endpoints the bot calls (recorded, with Discord's rules
// for interaction callbacks, deferred replies, follow-ups, threads and uploads) and a gateway WebSocket
// speaking the real protocol (HELLO, IDENTIFY, heartbeats, READY, GUILD_CREATE, RESUME, dispatches).
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

/** A request the bot made, as the fake received it. */
export interface Call {
  method: string;
  /** Path after `/api/v10`, e.g. `/channels/1/messages`. */
  path: string;
  query: URLSearchParams;
  /** The Authorization header (`Bot …`), if any. */
  auth: string | undefined;
  /** JSON body, or the `payload_json` part of a multipart upload. */
  body: JsonBody;
  files: UploadedFile[];
  at: number;
}

export interface UploadedFile {
  field: string;
  filename: string;
  contentType: string;
  content: string;
}

export interface FakeUser {
  id: string;
  username: string;
  global_name: string | null;
  discriminator: string;
  avatar: null;
  bot?: boolean;
}

export interface FakeMessage {
  id: string;
  channel_id: string;
  author: FakeUser;
  content: string;
  embeds: JsonBody[];
  components: JsonBody[];
  attachments: { id: string; filename: string; size: number; content_type: string; url: string }[];
  flags: number;
  message_reference?: JsonBody;
  webhook_id?: string;
  /** The interaction whose reply this is (deferred "thinking" until edited). */
  interactionId?: string;
  loading: boolean;
  deleted: boolean;
  type: number;
  timestamp: string;
  edited_timestamp: string | null;
  pinned: boolean;
  tts: boolean;
  mention_everyone: boolean;
  mentions: JsonBody[];
  mention_roles: string[];
}

interface FakeInteraction {
  id: string;
  token: string;
  type: number;
  dispatchedAt: number;
  /** The callback type the bot answered with (4, 5, 6, 7, 8, 9), once it did. */
  ack: { type: number; data: JsonBody } | undefined;
  /** The message a component interaction was on. */
  sourceMessageId: string | undefined;
  /** The original response message (created by a type 4/5 callback). */
  originalId: string | undefined;
  channelId: string;
}

export interface FakeChannel {
  id: string;
  type: number;
  name: string;
  guild_id?: string;
  parent_id?: string | null;
  recipients?: FakeUser[];
}

/** Whatever JSON the bot sent or the fake returns: the tests read it as Discord documents it. */
export type JsonBody = ReturnType<typeof JSON.parse>;

const API_PREFIX = '/api/v10';
const EPHEMERAL = 64;

let lastSnowflake = BigInt(Date.now() - 1_420_070_400_000) << 22n;
/** An id whose timestamp is `at` (ms since 1970), for interactions delivered late. */
export function snowflakeAt(at: number): string {
  return ((BigInt(at - 1_420_070_400_000) << 22n) | BigInt(Math.floor(Math.random() * 4096))).toString();
}

/** Increasing ids shaped like Discord's (timestamp since 2015 << 22). */
export function snowflake(): string {
  const now = BigInt(Date.now() - 1_420_070_400_000) << 22n;
  lastSnowflake = now > lastSnowflake ? now : lastSnowflake + 1n;
  return lastSnowflake.toString();
}

export function fakeUser(id: string, username: string, bot = false): FakeUser {
  return {
    id,
    username,
    global_name: username,
    discriminator: '0',
    avatar: null,
    ...(bot ? { bot: true } : {}),
  };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface FakeDiscordOptions {
  token?: string;
  heartbeatIntervalMs?: number;
  /** Discord's deadline for the first response to an interaction. */
  ackDeadlineMs?: number;
  /** More roles of the guild (ids), e.g. ones the config maps to dbops roles. */
  guildRoles?: string[];
}

export class FakeDiscord {
  readonly token: string;
  readonly applicationId = snowflake();
  readonly bot = fakeUser(snowflake(), 'dbops', true);
  readonly guildId = snowflake();
  readonly botRoleId = snowflake();
  readonly commandId = snowflake();
  readonly channel: FakeChannel;
  readonly voiceChannel: FakeChannel;
  readonly calls: Call[] = [];
  readonly messages = new Map<string, FakeMessage>();
  readonly channels = new Map<string, FakeChannel>();
  readonly interactions = new Map<string, FakeInteraction>();
  /** Guild role ids of a member in interaction payloads (default none; `null` leaves `roles` out). */
  readonly memberRoles = new Map<string, string[] | null>();
  /** The guild's members as GET /guilds/{id}/members lists them: user id → role ids. */
  readonly guildMembers = new Map<string, string[]>();
  /** Whether the application has the privileged Server Members intent enabled (else listing is refused). */
  membersIntent = true;
  readonly #guildRoles: string[];
  /** Every gateway payload the bot sent (IDENTIFY, heartbeats, RESUME). */
  readonly received: { op: number; d: JsonBody; at: number }[] = [];
  readonly events = new EventEmitter();
  readonly #heartbeatIntervalMs: number;
  readonly #ackDeadlineMs: number;
  #server: Server | undefined;
  #wss: WebSocketServer | undefined;
  #socket: WebSocket | undefined;
  #sequence = 0;
  #sessionId = '';
  #port = 0;
  /** While true, every gateway connection is closed (4000) before HELLO: an outage. */
  dropConnections = false;
  /** Interactions sent from now on were created this long before they are delivered (a slow gateway). */
  deliveredLateMs = 0;
  /** Files served as Discord's CDN serves attachments (GET /attachments/<id>/<name>). */
  readonly hosted = new Map<string, { content: Buffer; contentType: string }>();

  private constructor(options: FakeDiscordOptions) {
    this.token = options.token ?? `fake.${randomBytes(12).toString('hex')}`;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? 41_250;
    this.#ackDeadlineMs = options.ackDeadlineMs ?? 3000;
    this.#guildRoles = options.guildRoles ?? [];
    this.events.setMaxListeners(100);
    this.channel = { id: snowflake(), type: 0, name: 'incidents', guild_id: this.guildId, parent_id: null };
    this.voiceChannel = { id: snowflake(), type: 2, name: 'voice', guild_id: this.guildId, parent_id: null };
    this.channels.set(this.channel.id, this.channel);
    this.channels.set(this.voiceChannel.id, this.voiceChannel);
  }

  static async start(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
    const fake = new FakeDiscord(options);
    await fake.#listen();
    return fake;
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.#port}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.#port}/gateway`;
  }

  /** The env a bot process needs to talk to this fake (no retries, so failures are fast). */
  env(): Record<string, string> {
    return {
      DISCORD_TOKEN: this.token,
      DISCORD_APPLICATION_ID: this.applicationId,
      DISCORD_API_URL: this.apiUrl,
      DISCORD_REST_RETRIES: '0',
    };
  }

  async #listen(): Promise<void> {
    const server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/gateway')) {
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.#connected(ws, req));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
    this.#wss = wss;
  }

  async stop(): Promise<void> {
    for (const client of this.#wss?.clients ?? []) client.terminate();
    this.#wss?.close();
    await new Promise<void>((resolve) => {
      if (!this.#server) return resolve();
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    });
  }

  // ---- gateway -----------------------------------------------------------------------------------------

  #connected(ws: WebSocket, req: IncomingMessage): void {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    if (query.get('v') !== '10' || query.get('encoding') !== 'json') {
      ws.close(4012, 'Invalid API version');
      return;
    }
    if (this.dropConnections) {
      ws.close(4000, 'unavailable');
      return;
    }
    this.#socket = ws;
    this.events.emit('connection');
    this.#send(ws, { op: 10, d: { heartbeat_interval: this.#heartbeatIntervalMs }, s: null, t: null });
    ws.on('message', (raw) => {
      const payload = JSON.parse(String(raw)) as { op: number; d: JsonBody };
      this.received.push({ ...payload, at: Date.now() });
      this.events.emit('gateway', payload);
      switch (payload.op) {
        case 1:
          this.#send(ws, { op: 11, d: null, s: null, t: null });
          break;
        case 2:
          this.#identify(ws, payload.d);
          break;
        case 6:
          this.#resume(ws, payload.d);
          break;
        default:
          break;
      }
    });
  }

  #send(ws: WebSocket, payload: { op: number; d: unknown; s: number | null; t: string | null }): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(payload));
  }

  #identify(ws: WebSocket, d: { token?: string; intents?: number }): void {
    if (d.token !== this.token) {
      ws.close(4004, 'Authentication failed.');
      return;
    }
    this.#sessionId = randomBytes(16).toString('hex');
    this.#sequence = 0;
    this.dispatch('READY', {
      v: 10,
      user: this.bot,
      guilds: [{ id: this.guildId, unavailable: true }],
      session_id: this.#sessionId,
      resume_gateway_url: this.gatewayUrl,
      shard: [0, 1],
      application: { id: this.applicationId, flags: 0 },
      private_channels: [],
      presences: [],
      relationships: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: [],
      user_settings: {},
    });
    this.dispatch('GUILD_CREATE', this.#guild());
    this.events.emit('ready');
  }

  #resume(ws: WebSocket, d: { token?: string; session_id?: string }): void {
    if (d.token !== this.token || d.session_id !== this.#sessionId) {
      this.#send(ws, { op: 9, d: false, s: null, t: null });
      return;
    }
    this.dispatch('RESUMED', {});
    this.events.emit('resumed');
  }

  #guild() {
    const now = new Date().toISOString();
    const role = (id: string, name: string, extra: object = {}) => ({
      id,
      name,
      color: 0,
      colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
      hoist: false,
      icon: null,
      unicode_emoji: null,
      position: 0,
      permissions: '2248473465835073',
      managed: false,
      mentionable: false,
      flags: 0,
      ...extra,
    });
    return {
      id: this.guildId,
      name: 'ops',
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: snowflake(),
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: [
        role(this.guildId, '@everyone'),
        role(this.botRoleId, 'dbops', { managed: true, tags: { bot_id: this.bot.id } }),
        ...this.#guildRoles.map((id) => role(id, `role-${id.slice(-4)}`)),
      ],
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      joined_at: now,
      large: false,
      unavailable: false,
      member_count: 1,
      voice_states: [],
      members: [
        { user: this.bot, roles: [this.botRoleId], joined_at: now, deaf: false, mute: false, flags: 0 },
      ],
      channels: [this.channel, this.voiceChannel].map((c) => ({
        id: c.id,
        type: c.type,
        name: c.name,
        position: 0,
        permission_overwrites: [],
        parent_id: null,
        nsfw: false,
        rate_limit_per_user: 0,
        ...(c.type === 2 ? { bitrate: 64000, user_limit: 0, rtc_region: null } : { topic: null }),
      })),
      threads: [],
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
      premium_tier: 0,
      premium_subscription_count: 0,
      preferred_locale: 'en-US',
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
    };
  }

  /** Sends an op 0 dispatch to the connected bot. */
  dispatch(t: string, d: unknown): void {
    if (!this.#socket) throw new Error('the bot is not connected to the fake gateway');
    this.#sequence += 1;
    this.#send(this.#socket, { op: 0, d, s: this.#sequence, t });
  }

  /** Closes the gateway connection with a close code (4000: resumable; 4004: authentication failed). */
  closeGateway(code: number): void {
    this.#socket?.close(code, 'closed by the fake');
  }

  /** Resolves on the next gateway event of that name ('ready', 'resumed', 'connection'). */
  async next(event: 'ready' | 'resumed' | 'connection', timeoutMs = 10_000): Promise<void> {
    await this.#wait(event, timeoutMs);
  }

  async #wait(event: string, timeoutMs: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off(event, done);
        reject(new Error(`fake discord: no ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.events.once(event, done);
    });
  }

  // ---- interactions the test sends ---------------------------------------------------------------------

  #interactionBase(user: FakeUser, type: number, channel: FakeChannel) {
    // A late delivery: created (id timestamp, and the start of the 3 s to acknowledge) that long ago.
    const createdAt = Date.now() - this.deliveredLateMs;
    const id = this.deliveredLateMs > 0 ? snowflakeAt(createdAt) : snowflake();
    const token = `itok-${randomBytes(24).toString('hex')}`;
    this.interactions.set(id, {
      id,
      token,
      type,
      dispatchedAt: createdAt,
      ack: undefined,
      sourceMessageId: undefined,
      originalId: undefined,
      channelId: channel.id,
    });
    const result = this.#guildInteraction(user, type, channel, id, token);
    if (channel.type !== 1) return result;
    // In a DM there is no guild and no member: Discord sends the user instead.
    const { guild_id: _guild, member: _member, ...rest } = result.payload as Record<string, unknown>;
    return { id, token, payload: { ...rest, user, context: 1 } };
  }

  #guildInteraction(user: FakeUser, type: number, channel: FakeChannel, id: string, token: string) {
    const roles = this.memberRoles.get(user.id);
    return {
      id,
      token,
      payload: {
        id,
        application_id: this.applicationId,
        type,
        token,
        version: 1,
        guild_id: this.guildId,
        channel_id: channel.id,
        channel: {
          id: channel.id,
          type: channel.type,
          name: channel.name,
          guild_id: this.guildId,
          parent_id: channel.parent_id ?? null,
          flags: 0,
          permissions: '2248473465835073',
          ...(channel.type === 11
            ? {
                thread_metadata: {
                  archived: false,
                  auto_archive_duration: 1440,
                  archive_timestamp: new Date().toISOString(),
                  locked: false,
                },
              }
            : {}),
        },
        member: {
          user,
          ...(roles === null ? {} : { roles: roles ?? [] }),
          joined_at: new Date().toISOString(),
          deaf: false,
          mute: false,
          flags: 0,
          pending: false,
          nick: null,
          avatar: null,
          permissions: '2248473465835073',
        },
        app_permissions: '2248473465835073',
        locale: 'en-US',
        guild_locale: 'en-US',
        entitlements: [],
        authorizing_integration_owners: { '0': this.guildId },
        context: 0,
        attachment_size_limit: 26_214_400,
      },
    };
  }

  /** Serves `content` as an attachment would be; `size` is what Discord announces (the real size by default). */
  hostFile(
    filename: string,
    content: Buffer,
    options: { contentType?: string; size?: number; url?: string } = {},
  ): { id: string; filename: string; size: number; url: string; proxy_url: string; content_type: string } {
    const id = snowflake();
    const path = `/attachments/${id}/${encodeURIComponent(filename)}`;
    const contentType = options.contentType ?? 'text/csv';
    this.hosted.set(path, { content, contentType });
    const url = options.url ?? `http://127.0.0.1:${this.#port}${path}`;
    return {
      id,
      filename,
      size: options.size ?? content.length,
      url,
      proxy_url: url,
      content_type: contentType,
    };
  }

  /** `/db operation:… target:… args:… [file:…]` typed by `user` (INTERACTION_CREATE, type 2). */
  command(
    user: FakeUser,
    options: { operation: string; target?: string; args?: string },
    channel: FakeChannel = this.channel,
    file?: ReturnType<FakeDiscord['hostFile']>,
  ): { id: string; token: string; payload: JsonBody } {
    const base = this.#interactionBase(user, 2, channel);
    const payload = {
      ...base.payload,
      data: {
        id: this.commandId,
        name: 'db',
        type: 1,
        guild_id: this.guildId,
        options: [
          ...Object.entries(options)
            .filter(([, v]) => v !== undefined)
            .map(([name, value]) => ({ name, type: 3, value })),
          ...(file ? [{ name: 'file', type: 11, value: file.id }] : []),
        ],
        ...(file ? { resolved: { attachments: { [file.id]: file } } } : {}),
      },
    };
    this.dispatch('INTERACTION_CREATE', payload);
    return { id: base.id, token: base.token, payload };
  }

  /** Autocomplete of `/db` while `user` types into `focused` (type 4). */
  autocomplete(
    user: FakeUser,
    options: { operation?: string; target?: string },
    focused: 'operation' | 'target',
  ): { id: string; token: string } {
    const base = this.#interactionBase(user, 4, this.channel);
    this.dispatch('INTERACTION_CREATE', {
      ...base.payload,
      data: {
        id: this.commandId,
        name: 'db',
        type: 1,
        guild_id: this.guildId,
        options: Object.entries({ [focused]: '', ...options })
          .filter(([, v]) => v !== undefined)
          .map(([name, value]) => ({ name, type: 3, value, ...(name === focused ? { focused: true } : {}) })),
      },
    });
    return base;
  }

  /** A click by `user` on a button of a message (type 3). */
  click(
    user: FakeUser,
    messageId: string,
    customId: string,
  ): { id: string; token: string; payload: JsonBody } {
    const message = this.messages.get(messageId);
    if (!message) throw new Error(`fake discord: no message ${messageId}`);
    const channel = this.channels.get(message.channel_id) ?? this.channel;
    const base = this.#interactionBase(user, 3, channel);
    const stored = this.interactions.get(base.id);
    if (stored) stored.sourceMessageId = messageId;
    const payload = {
      ...base.payload,
      message: this.#messageJson(message),
      data: { custom_id: customId, component_type: 2 },
    };
    this.dispatch('INTERACTION_CREATE', payload);
    return { id: base.id, token: base.token, payload };
  }

  /** The same INTERACTION_CREATE delivered again (a replay, or another replica's session). */
  redeliver(payload: JsonBody): void {
    this.dispatch('INTERACTION_CREATE', payload);
  }

  /** A modal submitted by `user` (type 5) with its text inputs. */
  submitModal(
    user: FakeUser,
    customId: string,
    values: Record<string, string>,
    messageId?: string,
  ): { id: string; token: string } {
    const message = messageId ? this.messages.get(messageId) : undefined;
    const channel = (message && this.channels.get(message.channel_id)) ?? this.channel;
    const base = this.#interactionBase(user, 5, channel);
    this.dispatch('INTERACTION_CREATE', {
      ...base.payload,
      ...(message ? { message: this.#messageJson(message) } : {}),
      data: {
        custom_id: customId,
        components: Object.entries(values).map(([id, value]) => ({
          type: 1,
          components: [{ type: 4, custom_id: id, value }],
        })),
      },
    });
    return base;
  }

  /** A message typed by `user` in a channel or thread (MESSAGE_CREATE). */
  say(
    user: FakeUser,
    content: string,
    channel: FakeChannel = this.channel,
    attachments: ReturnType<FakeDiscord['hostFile']>[] = [],
  ): FakeMessage {
    const message = this.#store({ channel_id: channel.id, author: user, content });
    if (attachments.length > 0) {
      message.attachments = attachments.map((a) => ({
        id: a.id,
        filename: a.filename,
        size: a.size,
        content_type: a.content_type,
        url: a.url,
      }));
    }
    const mentionsBot = content.includes(`<@${this.bot.id}>`);
    this.dispatch('MESSAGE_CREATE', {
      ...this.#messageJson(message),
      guild_id: this.guildId,
      member: { roles: [], joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0 },
      mentions: mentionsBot ? [{ ...this.bot, member: { roles: [this.botRoleId] } }] : [],
    });
    return message;
  }

  // ---- REST --------------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    let call: Call;
    try {
      call = await this.#parse(req, url, raw);
    } catch (err) {
      this.#json(res, 400, {
        message: `fake discord could not parse the request: ${String(err)}`,
        code: 50109,
      });
      return;
    }
    this.calls.push(call);
    this.events.emit('call', call);
    const hosted = call.method === 'GET' ? this.hosted.get(url.pathname) : undefined;
    if (hosted) {
      res.writeHead(200, { 'content-type': hosted.contentType }).end(hosted.content);
      return;
    }
    try {
      const { status, body } = this.#route(call);
      if (body === undefined) {
        res.writeHead(status).end();
      } else this.#json(res, status, body);
    } catch (err) {
      if (err instanceof HttpError) {
        this.#json(res, err.status, { message: err.message, code: err.code });
      } else {
        this.#json(res, 500, { message: String(err), code: 0 });
      }
    }
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  async #parse(req: IncomingMessage, url: URL, raw: Buffer): Promise<Call> {
    const type = req.headers['content-type'] ?? '';
    let body: JsonBody;
    const files: UploadedFile[] = [];
    if (type.startsWith('multipart/form-data')) {
      const form = await new Request('http://fake/', {
        method: 'POST',
        headers: { 'content-type': type },
        body: raw,
      }).formData();
      for (const [field, value] of form.entries()) {
        if (typeof value === 'string') {
          if (field === 'payload_json') body = JSON.parse(value);
        } else {
          files.push({ field, filename: value.name, contentType: value.type, content: await value.text() });
        }
      }
    } else if (raw.length > 0) {
      body = JSON.parse(raw.toString('utf8'));
    }
    const pathname = decodeURIComponent(url.pathname);
    const path = pathname.startsWith(API_PREFIX) ? pathname.slice(API_PREFIX.length) : pathname;
    return {
      method: req.method ?? 'GET',
      path,
      query: url.searchParams,
      auth: req.headers.authorization,
      body,
      files,
      at: Date.now(),
    };
  }

  #requireBot(call: Call): void {
    if (call.auth !== `Bot ${this.token}`) throw new HttpError(401, 0, '401: Unauthorized');
  }

  #route(call: Call): { status: number; body?: unknown } {
    const { method, path } = call;
    const on = (verb: string, pattern: RegExp) => (method === verb ? pattern.exec(path) : null);
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/gateway/bot') {
      this.#requireBot(call);
      return {
        status: 200,
        body: {
          url: this.gatewayUrl,
          shards: 1,
          session_start_limit: { total: 1000, remaining: 999, reset_after: 86_400_000, max_concurrency: 1 },
        },
      };
    }
    if (method === 'GET' && path === '/users/@me') {
      this.#requireBot(call);
      return { status: 200, body: this.bot };
    }
    if (method === 'GET' && path === '/users/@me/guilds') {
      this.#requireBot(call);
      const after = BigInt(call.query.get('after') ?? '0');
      const guilds = BigInt(this.guildId) > after ? [{ id: this.guildId, name: 'ops', icon: null }] : [];
      return { status: 200, body: guilds };
    }
    m = on('GET', /^\/guilds\/(\d+)\/members$/);
    if (m) {
      this.#requireBot(call);
      if (m[1] !== this.guildId) throw new HttpError(404, 10004, 'Unknown Guild');
      if (!this.membersIntent) throw new HttpError(403, 50001, 'Missing Access');
      return { status: 200, body: this.#memberPage(call.query) };
    }
    if (method === 'GET' && path === '/applications/@me') {
      this.#requireBot(call);
      return { status: 200, body: { id: this.applicationId, name: 'dbops', bot: this.bot, flags: 0 } };
    }
    m = on('POST', /^\/interactions\/(\d+)\/([^/]+)\/callback$/);
    if (m) {
      return this.#callback(m[1] ?? '', m[2] ?? '', call);
    }
    m = /^\/webhooks\/(\d+)\/([^/]+)\/messages\/(@original|\d+)$/.exec(path);
    if (m) {
      const interaction = this.#byToken(m[1] ?? '', m[2] ?? '');
      if (method === 'PATCH')
        return { status: 200, body: this.#editWebhookMessage(interaction, m[3] ?? '', call) };
      if (method === 'DELETE') {
        const message = this.#webhookTarget(interaction, m[3] ?? '');
        message.deleted = true;
        return { status: 204 };
      }
    }
    m = on('POST', /^\/webhooks\/(\d+)\/([^/]+)$/);
    if (m) {
      const interaction = this.#byToken(m[1] ?? '', m[2] ?? '');
      return { status: 200, body: this.#followUp(interaction, call) };
    }
    m = on('POST', /^\/channels\/(\d+)\/messages$/);
    if (m) {
      this.#requireBot(call);
      const channel = this.#channel(m[1] ?? '');
      const message = this.#store({
        channel_id: channel.id,
        author: this.bot,
        ...this.#content(call),
        ...(call.body?.message_reference ? { message_reference: call.body.message_reference } : {}),
      });
      return { status: 200, body: this.#messageJson(message) };
    }
    m = on('PATCH', /^\/channels\/(\d+)\/messages\/(\d+)$/);
    if (m) {
      this.#requireBot(call);
      const message = this.messages.get(m[2] ?? '');
      if (!message || message.channel_id !== m[1] || message.deleted) {
        throw new HttpError(404, 10008, 'Unknown Message');
      }
      if (message.author.id !== this.bot.id)
        throw new HttpError(403, 50005, 'Cannot edit a message authored by another user');
      if (message.flags & EPHEMERAL) throw new HttpError(404, 10008, 'Unknown Message');
      this.#apply(message, call);
      return { status: 200, body: this.#messageJson(message) };
    }
    m = on('POST', /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/);
    if (m) {
      this.#requireBot(call);
      const parent = this.#channel(m[1] ?? '');
      const message = this.messages.get(m[2] ?? '');
      if (!message || message.channel_id !== parent.id || message.flags & EPHEMERAL) {
        throw new HttpError(404, 10008, 'Unknown Message');
      }
      if (parent.type !== 0 && parent.type !== 5)
        throw new HttpError(400, 50024, 'Cannot execute action on this channel type');
      if (this.channels.has(message.id))
        throw new HttpError(400, 160004, 'A thread has already been created for this message');
      const name = String(call.body?.name ?? '');
      if (name.length < 1 || name.length > 100) throw new HttpError(400, 50035, 'Invalid Form Body (name)');
      const thread: FakeChannel = {
        id: message.id,
        type: 11,
        name,
        guild_id: this.guildId,
        parent_id: parent.id,
      };
      this.channels.set(thread.id, thread);
      const json = {
        ...thread,
        owner_id: this.bot.id,
        member_count: 1,
        message_count: 0,
        flags: 0,
        thread_metadata: {
          archived: false,
          auto_archive_duration: call.body?.auto_archive_duration ?? 1440,
          archive_timestamp: new Date().toISOString(),
          locked: false,
        },
      };
      // Real Discord tells the bot about the thread it created.
      this.dispatch('THREAD_CREATE', { ...json, newly_created: true });
      return { status: 201, body: json };
    }
    if (method === 'POST' && path === '/users/@me/channels') {
      this.#requireBot(call);
      const recipient = String(call.body?.recipient_id ?? '');
      const existing = [...this.channels.values()].find(
        (c) => c.type === 1 && c.recipients?.[0]?.id === recipient,
      );
      const dm = existing ?? {
        id: snowflake(),
        type: 1,
        name: '',
        recipients: [fakeUser(recipient, `user-${recipient.slice(-4)}`)],
      };
      this.channels.set(dm.id, dm);
      return { status: 200, body: { id: dm.id, type: 1, recipients: dm.recipients, last_message_id: null } };
    }
    m = on('PUT', /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/);
    if (m) {
      this.#requireBot(call);
      if (m[1] !== this.applicationId) throw new HttpError(403, 50001, 'Missing Access');
      const guild = m[2];
      const commands = (call.body as JsonBody[]).map((command) => ({
        ...command,
        id: snowflake(),
        application_id: this.applicationId,
        version: snowflake(),
        ...(guild ? { guild_id: guild } : {}),
      }));
      return { status: 200, body: commands };
    }
    throw new HttpError(404, 0, `404: Not Found (${method} ${path})`);
  }

  /** One page of members as Discord lists them: ordered by user id, `limit` (1–1000, default 1) after `after`. */
  #memberPage(query: URLSearchParams): JsonBody[] {
    const limit = Number(query.get('limit') ?? '1');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new HttpError(400, 50035, 'Invalid Form Body (limit)');
    const after = BigInt(query.get('after') ?? '0');
    return [...this.guildMembers.entries()]
      .filter(([id]) => BigInt(id) > after)
      .sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1))
      .slice(0, limit)
      .map(([id, roles]) => ({
        user: fakeUser(id, `user-${id.slice(-4)}`),
        roles,
        joined_at: new Date().toISOString(),
        deaf: false,
        mute: false,
        flags: 0,
      }));
  }

  #byToken(applicationId: string, token: string): FakeInteraction {
    if (applicationId !== this.applicationId) throw new HttpError(404, 10015, 'Unknown Webhook');
    const interaction = [...this.interactions.values()].find((i) => i.token === token);
    if (!interaction) throw new HttpError(401, 50027, 'Invalid Webhook Token');
    if (!interaction.ack) throw new HttpError(404, 10015, 'Unknown Webhook');
    return interaction;
  }

  #callback(id: string, token: string, call: Call): { status: number; body?: unknown } {
    const interaction = this.interactions.get(id);
    if (!interaction || interaction.token !== token) throw new HttpError(404, 10062, 'Unknown interaction');
    if (interaction.ack) throw new HttpError(400, 40060, 'Interaction has already been acknowledged.');
    if (Date.now() - interaction.dispatchedAt > this.#ackDeadlineMs) {
      throw new HttpError(404, 10062, 'Unknown interaction');
    }
    const type = Number(call.body?.type);
    const data = call.body?.data ?? {};
    interaction.ack = { type, data };
    switch (type) {
      case 4:
      case 5: {
        if (interaction.type === 4) throw new HttpError(400, 50035, 'Invalid interaction response type');
        const message = this.#store({
          channel_id: this.#interactionChannel(interaction),
          author: this.bot,
          ...(type === 4 ? this.#content(call, data) : { content: '' }),
          flags: (data.flags ?? 0) & EPHEMERAL,
          interactionId: interaction.id,
          loading: type === 5,
          webhook_id: this.applicationId,
        });
        interaction.originalId = message.id;
        break;
      }
      case 6:
      case 7: {
        if (interaction.type !== 3) throw new HttpError(400, 50035, 'Invalid interaction response type');
        const message = this.messages.get(interaction.sourceMessageId ?? '');
        if (message && type === 7) this.#apply(message, call, data);
        interaction.originalId = message?.id;
        break;
      }
      case 8:
        if (interaction.type !== 4) throw new HttpError(400, 50035, 'Invalid interaction response type');
        if (!Array.isArray(data.choices) || data.choices.length > 25)
          throw new HttpError(400, 50035, 'Invalid Form Body (choices)');
        break;
      case 9:
        if (interaction.type !== 2 && interaction.type !== 3)
          throw new HttpError(400, 50035, 'Invalid interaction response type');
        break;
      default:
        throw new HttpError(400, 50035, `Invalid interaction response type ${type}`);
    }
    return { status: 204 };
  }

  #interactionChannel(interaction: FakeInteraction): string {
    return interaction.channelId;
  }

  #webhookTarget(interaction: FakeInteraction, which: string): FakeMessage {
    const id = which === '@original' ? interaction.originalId : which;
    const message = id ? this.messages.get(id) : undefined;
    if (!message || message.deleted) throw new HttpError(404, 10008, 'Unknown Message');
    return message;
  }

  #editWebhookMessage(interaction: FakeInteraction, which: string, call: Call): unknown {
    const message = this.#webhookTarget(interaction, which);
    this.#apply(message, call);
    message.loading = false;
    return this.#messageJson(message);
  }

  /**
   * A follow-up sent while the deferred reply is still loading edits that reply instead (Discord's
   * documented backwards-compatible behaviour), keeping its ephemeral state whatever the flags say.
   */
  #followUp(interaction: FakeInteraction, call: Call): unknown {
    const original = interaction.originalId ? this.messages.get(interaction.originalId) : undefined;
    if (original?.loading && !original.deleted && interaction.ack?.type === 5) {
      this.#apply(original, call);
      original.loading = false;
      return this.#messageJson(original);
    }
    const message = this.#store({
      channel_id: original?.channel_id ?? this.#interactionChannel(interaction),
      author: this.bot,
      ...this.#content(call),
      flags: (call.body?.flags ?? 0) & EPHEMERAL,
      interactionId: interaction.id,
      webhook_id: this.applicationId,
    });
    return this.#messageJson(message);
  }

  #channel(id: string): FakeChannel {
    const channel = this.channels.get(id);
    if (!channel) throw new HttpError(404, 10003, 'Unknown Channel');
    return channel;
  }

  #content(call: Call, data: JsonBody = call.body ?? {}) {
    const attachments = call.files.map((f, i) => ({
      id: String(i),
      filename: f.filename,
      size: Buffer.byteLength(f.content),
      content_type: f.contentType,
      url: `http://127.0.0.1:${this.#port}/attachments/${f.filename}`,
    }));
    if ((data.content ?? '').length > 2000)
      throw new HttpError(400, 50035, 'Invalid Form Body (content: Must be 2000 or fewer in length.)');
    const embedChars = (data.embeds ?? []).reduce(
      (n: number, e: JsonBody) =>
        n +
        (e.title?.length ?? 0) +
        (e.description?.length ?? 0) +
        (e.footer?.text?.length ?? 0) +
        (e.fields ?? []).reduce((k: number, f: JsonBody) => k + f.name.length + f.value.length, 0),
      0,
    );
    if (embedChars > 6000) throw new HttpError(400, 50035, 'Invalid Form Body (embeds: total over 6000)');
    for (const e of data.embeds ?? []) {
      if ((e.description?.length ?? 0) > 4096)
        throw new HttpError(400, 50035, 'Invalid Form Body (embed description)');
      for (const f of e.fields ?? []) {
        if (f.value.length > 1024 || f.name.length > 256)
          throw new HttpError(400, 50035, 'Invalid Form Body (embed field)');
      }
    }
    return {
      content: data.content ?? '',
      embeds: data.embeds ?? [],
      components: data.components ?? [],
      attachments,
    };
  }

  #apply(message: FakeMessage, call: Call, data: JsonBody = call.body ?? {}): void {
    const next = this.#content(call, data);
    if ('content' in data) message.content = next.content;
    if ('embeds' in data) message.embeds = next.embeds;
    if ('components' in data) message.components = next.components;
    if (call.files.length > 0 || 'attachments' in data) message.attachments = next.attachments;
    message.edited_timestamp = new Date().toISOString();
  }

  #store(fields: Partial<FakeMessage> & { channel_id: string; author: FakeUser }): FakeMessage {
    const message: FakeMessage = {
      id: snowflake(),
      content: '',
      embeds: [],
      components: [],
      attachments: [],
      flags: 0,
      loading: false,
      deleted: false,
      type: 0,
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      pinned: false,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      ...fields,
    };
    this.messages.set(message.id, message);
    return message;
  }

  #messageJson(message: FakeMessage) {
    const { loading: _loading, deleted: _deleted, interactionId: _interactionId, ...json } = message;
    return { ...json, flags: message.flags | (message.loading ? 128 : 0) };
  }

  // ---- assertions --------------------------------------------------------------------------------------

  /** Waits for a call matching `predicate` (including one already made). */
  async waitForCall(predicate: (call: Call) => boolean, timeoutMs = 10_000): Promise<Call> {
    const found = this.calls.find(predicate);
    if (found) return found;
    return await new Promise<Call>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('call', listener);
        reject(
          new Error(
            `fake discord: no matching call within ${timeoutMs} ms; calls were:\n${this.calls.map((c) => `  ${c.method} ${c.path}`).join('\n')}`,
          ),
        );
      }, timeoutMs);
      const listener = (call: Call) => {
        if (!predicate(call)) return;
        clearTimeout(timer);
        this.events.off('call', listener);
        resolve(call);
      };
      this.events.on('call', listener);
    });
  }

  /** Every call about one interaction: its callback, and the webhook calls made with its token. */
  callsOf(interaction: { id: string; token: string }): Call[] {
    return this.calls.filter(
      (c) =>
        c.path.startsWith(`/interactions/${interaction.id}/`) ||
        c.path.startsWith(`/webhooks/${this.applicationId}/${interaction.token}`),
    );
  }

  /** Calls that create or edit a message (anything that could ping someone). */
  messageCalls(): Call[] {
    return this.calls.filter(
      (c) =>
        (c.method === 'POST' && /^\/channels\/\d+\/messages$/.test(c.path)) ||
        (c.method === 'PATCH' && /\/messages\/(\d+|@original)$/.test(c.path)) ||
        (c.method === 'POST' && /^\/webhooks\/\d+\/[^/]+$/.test(c.path)) ||
        (c.method === 'POST' && /\/callback$/.test(c.path) && [4, 7].includes(Number(c.body?.type))),
    );
  }
}
