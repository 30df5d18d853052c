// What `dbops start` runs besides the core: chat surfaces, each connected by its own SDK.
import type { ApprovalCardPoster } from '../notify/approvals.js';
import type { ChannelPoster } from '../notify/poster.js';
import type { Lane, LaneStats } from './lanes.js';

export interface RunningSurface {
  name: 'slack' | 'discord' | 'schedules' | 'approvals';
  /** Connected and able to take commands (for /readyz). */
  healthy(): boolean;
  /** Why it is not healthy, when it is not. */
  problem(): string | undefined;
  /** What is wrong without making dbops not ready (a user group it cannot read, a channel schedules cannot post to), for /readyz. */
  detail?(): string[];
  /** Its work queues with work in them, per lane (`target:<name>`, `builtins`, …), for /metrics and /readyz. */
  lanes?(): Record<Lane, LaneStats>;
  /** Posts to this surface's channels without an invocation (schedules, alerts). */
  poster?: ChannelPoster;
  /** Posts the approval cards of requests made outside chat in an approvals channel. */
  approvalCards?: ApprovalCardPoster;
  /** Stops taking commands and disconnects. */
  stop(): Promise<void>;
}
