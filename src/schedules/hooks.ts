// What schedules tell the rest of dbops after each run (alerts observe it), and the history sampler's shape.
import type { ChannelRef } from '../notify/poster.js';

export interface ScheduledRunReport {
  schedule: string;
  target: string;
  operation: string;
  person: string;
  outcome: 'succeeded' | 'failed' | 'refused' | 'interrupted';
  startedAt: Date;
  finishedAt: Date;
  /** The operation's structured result (what --json prints). */
  data?: unknown;
  text?: string;
  /** Files the answer brought (a digest's charts): posted with it. */
  files?: { name: string; data: Buffer }[];
  error?: string;
  post?: ChannelRef;
}

export type AfterScheduledRun = (report: ScheduledRunReport) => Promise<void>;

export type SampleTarget = (target: string, at: Date) => Promise<{ samples: number }>;
