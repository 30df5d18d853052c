// `/db activity <target> [--older-than 0s]`: the client sessions of the target database that are doing something.
import { defineOperation } from '../src/core/operation.js';
import { ACTIVITY_DESCRIPTION, activityArgs, runActivity } from './lib/activity.js';

export default defineOperation({
  name: 'activity',
  summary: 'Non-idle client sessions of the target database, with query and transaction durations',
  usage: 'activity <target> [--older-than 0s]',
  description: ACTIVITY_DESCRIPTION,
  args: activityArgs('0s'),
  risk: 'read',
  run: runActivity,
});
