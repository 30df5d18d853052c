// Posting to a chat channel outside any command's thread (schedules, alerts): the types both sides share.
// h7 owns the implementations (Slack Web API, Discord REST); this file holds the interface only.

/** A channel: Slack channel id / Discord channel id. */
export interface ChannelRef {
  surface: 'slack' | 'discord';
  channel: string;
}

/** A message that was posted: Slack ts / Discord message id. */
export interface PostedRef extends ChannelRef {
  id: string;
}

export interface OutgoingPost {
  text: string;
  thread?: PostedRef;
  buttons?: { actionId: string; label: string; value: string }[];
  files?: { name: string; data: Buffer }[];
}

/** Posts one message; a channel the bot cannot post to raises an error naming the channel and reason. */
export interface ChannelPoster {
  post(to: ChannelRef, message: OutgoingPost): Promise<PostedRef>;
}
