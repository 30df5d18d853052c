// Roles held through chat platform groups: Slack user groups read in the background, Discord roles from
// payloads (kept in the state database for every replica) and, opt-in, from the guilds' member listing.
import type { Config, RoleSources } from '../config/schema.js';
import { DiscordMembers } from './discord-members.js';
import { Refresher } from './refresher.js';

/** Reads the user ids (`U…`, `W…`) of one Slack user group; throws with Slack's error code on failure. */
export type SlackGroupReader = (groupId: string) => Promise<readonly string[]>;

interface GroupState {
  members: ReadonlySet<string>;
  /** When the membership was last read successfully (undefined: never). */
  readAt?: Date;
  /** The last failure, cleared by a successful read. */
  error?: { message: string; at: Date };
}

/** Who holds a role through the platforms right now, for `check-config` and the docs. */
export interface RoleHolders {
  role: string;
  slack: { group: string; members: readonly string[]; problem?: string }[];
  discord: readonly string[];
  /** Discord members known (observed within keep_last_known, or listed) to hold one of those role ids. */
  discordMembers: readonly string[];
}

export interface DirectoryOptions {
  clock?: () => Date;
  /** Called with each refresh failure (a group that cannot be read), for the log. */
  onProblem?: (group: string, message: string) => void;
  /** Called with each failure to read the Discord guild members (listing on), for the log. */
  onDiscordProblem?: (message: string) => void;
}

/** A platform identity as audited: `discord:8035…` gives the Discord user id. */
function discordUser(identity: string): string | undefined {
  return /^discord:(\d{5,25})$/.exec(identity)?.[1];
}

export class RoleDirectory {
  readonly #sources: RoleSources | undefined;
  readonly #clock: () => Date;
  readonly #onProblem: DirectoryOptions['onProblem'];
  readonly #groups = new Map<string, GroupState>();
  /** Discord members' role ids: observed in payloads (stored for every replica) and listed. */
  readonly discord: DiscordMembers;
  #reader: SlackGroupReader | undefined;
  readonly #refresher = new Refresher(() => this.#readGroups());
  #lastAttempt: Date | undefined;

  constructor(config: Config, options: DirectoryOptions = {}) {
    this.#sources = config.roleSources;
    this.#clock = options.clock ?? (() => new Date());
    this.#onProblem = options.onProblem;
    this.discord = new DiscordMembers(config.roleSources, this.#clock, options.onDiscordProblem);
  }

  /** Every Slack group id the config names. */
  get slackGroups(): string[] {
    const groups = new Set<string>();
    for (const source of Object.values(this.#sources?.roles ?? {})) {
      for (const group of source.slackGroups) groups.add(group);
    }
    return [...groups].sort();
  }

  /** True when some role comes from Slack groups (the Slack surface then has to read them). */
  get usesSlack(): boolean {
    return this.slackGroups.length > 0;
  }

  /** Connects the Slack reader (the Slack surface does, once it has a client). */
  useSlack(reader: SlackGroupReader): void {
    this.#reader = reader;
  }

  /** Reads every configured Slack group once; failures keep the last known membership. */
  async refresh(): Promise<void> {
    if (!this.#reader) return;
    await this.#refresher.run();
  }

  async #readGroups(): Promise<void> {
    const reader = this.#reader;
    if (!reader) return;
    this.#lastAttempt = this.#clock();
    for (const group of this.slackGroups) {
      const state = this.#groups.get(group) ?? { members: new Set<string>() };
      try {
        const members = await reader(group);
        this.#groups.set(group, { members: new Set(members), readAt: this.#clock() });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.#groups.set(group, { ...state, error: { message, at: this.#clock() } });
        this.#onProblem?.(group, message);
      }
    }
  }

  /** Reads the groups now, then again every `refresh` seconds; returns a stop function. */
  start(): () => void {
    if (!this.#reader || !this.usesSlack) return () => {};
    return this.#refresher.start(this.#sources?.refreshSeconds ?? 300);
  }

  stop(): void {
    this.#refresher.stop();
  }

  /**
   * Why a group grants nothing now: never read, or read too long ago (the last known membership is kept
   * `keep_last_known` after the last successful read), with the last error. Undefined when it is usable.
   */
  groupProblem(group: string): string | undefined {
    const state = this.#groups.get(group);
    if (!this.#reader) return `Slack group ${group} cannot be read: Slack is not connected`;
    if (!state?.readAt) {
      return state?.error
        ? `Slack group ${group} cannot be read: ${state.error.message}`
        : `Slack group ${group} has not been read yet`;
    }
    const keepMs = (this.#sources?.keepSeconds ?? 3600) * 1000;
    if (this.#clock().getTime() - state.readAt.getTime() > keepMs) {
      const why = state.error ? `: ${state.error.message}` : '';
      return `Slack group ${group} was last read at ${state.readAt.toISOString()}, longer ago than keep_last_known allows${why}`;
    }
    return undefined;
  }

  /** Every group with a read failure right now (also while its last known membership is still used). */
  problems(): string[] {
    const out: string[] = [];
    for (const group of this.slackGroups) {
      const state = this.#groups.get(group);
      const problem = this.groupProblem(group);
      if (problem) out.push(problem);
      else if (state?.error)
        out.push(
          `Slack group ${group} cannot be read (${state.error.message}); using the membership read at ${state.readAt?.toISOString()}`,
        );
    }
    return out;
  }

  /** The roles a Slack user holds through groups whose membership is known and not too old. */
  slackRoles(userId: string): string[] {
    this.#refreshIfDue();
    const roles: string[] = [];
    for (const [role, source] of Object.entries(this.#sources?.roles ?? {})) {
      const member = source.slackGroups.some(
        (group) => this.groupProblem(group) === undefined && this.#groups.get(group)?.members.has(userId),
      );
      if (member) roles.push(role);
    }
    return roles;
  }

  /**
   * Before a Discord user's command. A guild payload's role ids (never anything typed; an empty list when
   * the member's roles are missing) are remembered and stored for every replica; from a DM (no member,
   * `roleIds` undefined) the roles any replica last stored for the user are loaded instead. Rejects when
   * the state database cannot do either. Votes are judged on the newest observation until keep_last_known.
   */
  async discordActor(userId: string, roleIds: readonly string[] | undefined): Promise<void> {
    if (roleIds === undefined) await this.discord.load([userId]);
    else await this.discord.observe(userId, roleIds);
  }

  /**
   * Before judging: loads what any replica stored about the Discord identities among `identities`
   * (`discord:…`, as audited), so the judgement is the same on every replica and after a restart.
   */
  async prepare(identities: readonly string[]): Promise<void> {
    const users = identities.flatMap((identity) => discordUser(identity) ?? []);
    await this.discord.load(users);
  }

  /** The roles a Discord user holds through the role ids last seen on them (or listed). */
  discordRoles(userId: string): string[] {
    const held = this.discord.roleIdsOf(userId);
    if (held.length === 0) return [];
    return Object.entries(this.#sources?.roles ?? {})
      .filter(([, source]) => source.discordRoles.some((id) => held.includes(id)))
      .map(([role]) => role);
  }

  /** Who holds each platform-sourced role, as last read (Discord roles are only named by id). */
  holders(): RoleHolders[] {
    return Object.entries(this.#sources?.roles ?? {}).map(([role, source]) => ({
      role,
      slack: source.slackGroups.map((group) => {
        const problem = this.groupProblem(group);
        const members = [...(this.#groups.get(group)?.members ?? [])].sort();
        return { group, members, ...(problem ? { problem } : {}) };
      }),
      discord: source.discordRoles,
      discordMembers: [...new Set(source.discordRoles.flatMap((id) => this.discord.holdersOf(id)))].sort(),
    }));
  }

  #refreshIfDue(): void {
    if (!this.#reader || this.#refresher.running) return;
    const dueMs = (this.#sources?.refreshSeconds ?? 300) * 1000;
    const last = this.#lastAttempt;
    if (last && this.#clock().getTime() - last.getTime() <= dueMs) return;
    if (this.usesSlack) this.refresh().catch(() => {});
  }
}
