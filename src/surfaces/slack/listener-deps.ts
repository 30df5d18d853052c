// What every Slack listener module works with (handlers.ts, actions-csv.ts): the Bolt app, the core,
// the threads answers go to, the log, the queue work runs in, and the conversations of invocations.
import type { App as BoltApp } from '@slack/bolt';
import type { App } from '../../app.js';
import type { Logger } from '../../core/log.js';
import type { Invocation } from '../../core/types.js';
import type { Conversation, SlackThreads } from './threads.js';

export interface ListenerDeps {
  bolt: BoltApp;
  app: App;
  threads: SlackThreads;
  log: Logger;
  /**
   * Runs `work` after the ack has gone out, in a bounded queue so that a burst of deliveries does not hold
   * more connections and memory than the pools can use; keeps track of it (awaited on stop). `command`
   * (the command text and channel) picks the work's lane: per target, so a sick target's commands never
   * delay another target's (src/surfaces/lanes.ts); without it the work goes with the built-ins.
   */
  track(work: () => Promise<void>, command?: { text: string; channel?: string | undefined }): void;
  /** Which conversation an invocation belongs to, for its progress lines. */
  conversations: WeakMap<Invocation, Conversation>;
}
