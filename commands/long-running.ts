// `/db long-running <target> [--older-than 1m]`: activity, limited to queries running for more than a minute.
import { defineOperation } from '../src/core/operation.js';
import { ACTIVITY_DESCRIPTION, activityArgs, runActivity } from './lib/activity.js';

export default defineOperation({
  name: 'long-running',
  summary: 'Client sessions of the target database whose query has run for more than --older-than (1m)',
  usage: 'long-running <target> [--older-than 1m]',
  description: `${ACTIVITY_DESCRIPTION} The same answer as activity, with --older-than 1m by default.`,
  args: activityArgs('1m'),
  risk: 'read',
  run: runActivity,
});
