// Posting to a chat channel without an invocation (schedules, alerts): the interface and its failure.

export interface ChannelRef {
  surface: 'slack' | 'discord';
  /** Slack channel id / Discord channel id. */
  channel: string;
}

export interface PostedRef extends ChannelRef {
  /** Slack ts / Discord message id. */
  id: string;
}

/**
 * A message in plain text: the first line is its headline, the lines after it are shown preformatted.
 * Posters escape everything (no mentions, links or markup come out of a value); `thread` puts it under
 * that earlier message; buttons carry an action id and a value the surface routes back as a command.
 */
export interface OutgoingPost {
  text: string;
  thread?: PostedRef;
  buttons?: { actionId: string; label: string; value: string }[];
  files?: { name: string; data: Buffer }[];
}

export interface ChannelPoster {
  post(to: ChannelRef, message: OutgoingPost): Promise<PostedRef>;
}

/** A post that did not land: names the channel and why, for logs and /readyz detail. */
export class ChannelPostError extends Error {
  constructor(
    readonly to: ChannelRef,
    readonly reason: string,
  ) {
    super(`cannot post to ${to.surface} channel ${to.channel}: ${reason}`);
    this.name = 'ChannelPostError';
  }
}

/** One poster for both surfaces: each post goes to the poster of its channel's surface. */
export class SurfacePosters implements ChannelPoster {
  readonly #bySurface: Partial<Record<ChannelRef['surface'], ChannelPoster>>;

  constructor(bySurface: Partial<Record<ChannelRef['surface'], ChannelPoster>>) {
    this.#bySurface = bySurface;
  }

  async post(to: ChannelRef, message: OutgoingPost): Promise<PostedRef> {
    const poster = this.#bySurface[to.surface];
    if (!poster) throw new ChannelPostError(to, `the ${to.surface} surface is not running in this dbops`);
    return await poster.post(to, message);
  }
}

/** The headline and the preformatted rest of a post's text. */
export function splitPost(text: string): { headline: string; body: string } {
  const at = text.indexOf('\n');
  if (at < 0) return { headline: text, body: '' };
  return { headline: text.slice(0, at), body: text.slice(at + 1).replace(/^\n+|\n+$/g, '') };
}
