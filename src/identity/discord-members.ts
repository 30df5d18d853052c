// Discord members' role ids as every replica knows them: payload observations written through to the state
// database (newest wins across replicas), and — opt-in — the guilds' member listing read in the background.
import type { RoleSources } from '../config/schema.js';
import type { ObservedRoles } from '../state/member-roles.js';
import { Refresher } from './refresher.js';

const PLATFORM = 'discord';

/** The state store's member-role methods (PgStateStore has them). */
export interface MemberRoleStore {
  saveMemberRoles(platform: string, observed: ObservedRoles): Promise<void>;
  loadMemberRoles(platform: string, userIds: readonly string[]): Promise<ObservedRoles[]>;
  membersWithRoles(platform: string, roleIds: readonly string[], since: Date): Promise<ObservedRoles[]>;
}

/** Reads every member of the bot's guilds: user id → role ids. Throws with Discord's error on failure. */
export type DiscordMemberReader = () => Promise<ReadonlyMap<string, readonly string[]>>;

interface Seen {
  roles: readonly string[];
  at: Date;
}

interface Listing {
  /** Members holding at least one configured role id, with those ids; anyone else holds none of them. */
  members: ReadonlyMap<string, readonly string[]>;
  readAt?: Date;
  error?: { message: string; at: Date };
}

export class DiscordMembers {
  readonly #sources: RoleSources | undefined;
  readonly #clock: () => Date;
  readonly #onProblem: ((message: string) => void) | undefined;
  readonly #observed = new Map<string, Seen>();
  #listing: Listing = { members: new Map() };
  #store: MemberRoleStore | undefined;
  #reader: DiscordMemberReader | undefined;
  readonly #refresher = new Refresher(() => this.#readListing());

  constructor(sources: RoleSources | undefined, clock: () => Date, onProblem?: (message: string) => void) {
    this.#sources = sources;
    this.#clock = clock;
    this.#onProblem = onProblem;
  }

  /** Every Discord role id the config maps to a role. */
  get roleIds(): string[] {
    const ids = new Set<string>();
    for (const source of Object.values(this.#sources?.roles ?? {})) {
      for (const id of source.discordRoles) ids.add(id);
    }
    return [...ids].sort();
  }

  /** True when some role comes from Discord roles (payloads then matter). */
  get enabled(): boolean {
    return this.roleIds.length > 0;
  }

  /** True when the config asks for the guilds' member listing (role_sources.discord_member_listing). */
  get listing(): boolean {
    return this.enabled && this.#sources?.discordMemberListing === true;
  }

  useStore(store: MemberRoleStore): void {
    this.#store = store;
  }

  useReader(reader: DiscordMemberReader): void {
    this.#reader = reader;
  }

  get #keepMs(): number {
    return (this.#sources?.keepSeconds ?? 3600) * 1000;
  }

  /** Keeps an observation unless a newer one of the member is known. */
  #remember(userId: string, roles: readonly string[], at: Date): void {
    const known = this.#observed.get(userId);
    if (known && known.at.getTime() > at.getTime()) return;
    this.#observed.set(userId, { roles: [...roles], at });
  }

  /**
   * The role ids a guild payload of `userId` carried (an empty list when it carried none), remembered and
   * written through to the state database; rejects when the write fails, so nothing is decided on roles
   * the other replicas cannot see.
   */
  async observe(userId: string, roleIds: readonly string[]): Promise<void> {
    if (!this.enabled) return;
    const at = this.#clock();
    this.#remember(userId, roleIds, at);
    await this.#store?.saveMemberRoles(PLATFORM, { userId, roleIds, seenAt: at });
  }

  /** Loads the stored observations of these members where they are newer than what this process knows. */
  async load(userIds: readonly string[]): Promise<void> {
    if (!this.enabled || !this.#store || userIds.length === 0) return;
    for (const row of await this.#store.loadMemberRoles(PLATFORM, [...new Set(userIds)])) {
      this.#remember(row.userId, row.roleIds, row.seenAt);
    }
  }

  /** Loads every member seen within keep_last_known holding a configured role (approvers to DM). */
  async loadHolders(): Promise<void> {
    if (!this.enabled || !this.#store) return;
    const since = new Date(this.#clock().getTime() - this.#keepMs);
    for (const row of await this.#store.membersWithRoles(PLATFORM, this.roleIds, since)) {
      this.#remember(row.userId, row.roleIds, row.seenAt);
    }
  }

  /**
   * The role ids a member holds now: the newer of their last observation and the last member listing,
   * each only within keep_last_known; none when neither is known.
   */
  roleIdsOf(userId: string): readonly string[] {
    const now = this.#clock().getTime();
    const fresh = (at: Date | undefined) => at !== undefined && now - at.getTime() <= this.#keepMs;
    const seen = this.#observed.get(userId);
    const listedAt = this.listing ? this.#listing.readAt : undefined;
    const listed = fresh(listedAt) ? (this.#listing.members.get(userId) ?? []) : undefined;
    if (seen && fresh(seen.at) && (listed === undefined || (listedAt && seen.at >= listedAt))) {
      return seen.roles;
    }
    return listed ?? [];
  }

  /**
   * Why a member's roles are no longer known: their last observation is older than keep_last_known and
   * no fresh listing stands in. Undefined when they are known, or were never seen.
   */
  staleness(userId: string): string | undefined {
    const seen = this.#observed.get(userId);
    if (!seen || this.#clock().getTime() - seen.at.getTime() <= this.#keepMs) return undefined;
    if (this.listing && this.listingProblem() === undefined) return undefined;
    return `your Discord roles were last seen at ${seen.at.toISOString()}, longer ago than keep_last_known allows; use /db in the server once`;
  }

  /** Members known (observed or listed) to hold `roleId` now. */
  holdersOf(roleId: string): string[] {
    const users = new Set([...this.#observed.keys(), ...this.#listing.members.keys()]);
    return [...users].filter((user) => this.roleIdsOf(user).includes(roleId)).sort();
  }

  /** Reads the guilds' members once; a failure keeps the last listing (until keep_last_known). */
  async refresh(): Promise<void> {
    if (!this.#reader || !this.listing) return;
    await this.#refresher.run();
  }

  async #readListing(): Promise<void> {
    const reader = this.#reader;
    if (!reader) return;
    const wanted = new Set(this.roleIds);
    try {
      const all = await reader();
      const members = new Map<string, readonly string[]>();
      for (const [user, roles] of all) {
        const held = roles.filter((id) => wanted.has(id));
        if (held.length > 0) members.set(user, held);
      }
      this.#listing = { members, readAt: this.#clock() };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#listing = { ...this.#listing, error: { message, at: this.#clock() } };
      this.#onProblem?.(message);
    }
  }

  /** Reads the members now, then every `refresh`; returns a stop function (nothing when listing is off). */
  start(): () => void {
    if (!this.#reader || !this.listing) return () => {};
    return this.#refresher.start(this.#sources?.refreshSeconds ?? 300);
  }

  stop(): void {
    this.#refresher.stop();
  }

  /** Why the member listing grants nothing now (never read, or read too long ago); undefined when usable. */
  listingProblem(): string | undefined {
    if (!this.listing) return undefined;
    const { readAt, error } = this.#listing;
    if (!this.#reader) return 'Discord guild members cannot be read: Discord is not connected';
    if (!readAt) {
      return error
        ? `Discord guild members cannot be read: ${error.message}`
        : 'Discord guild members have not been read yet';
    }
    if (this.#clock().getTime() - readAt.getTime() > this.#keepMs) {
      const why = error ? `: ${error.message}` : '';
      return `Discord guild members were last read at ${readAt.toISOString()}, longer ago than keep_last_known allows${why}`;
    }
    return undefined;
  }

  /** The listing's problem, also while its last known members are still used. */
  problems(): string[] {
    const problem = this.listingProblem();
    if (problem) return [problem];
    const { error, readAt } = this.#listing;
    return error
      ? [
          `Discord guild members cannot be read (${error.message}); using the members read at ${readAt?.toISOString()}`,
        ]
      : [];
  }
}
