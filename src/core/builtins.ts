// Built-in commands beside the catalog, by name: each handler gets the core's services, never the core.

import { alerts } from '../alerts/command.js';
import { digest } from '../digest/digest.js';
import { history } from '../history/command.js';
import { trend } from '../history/trend.js';
import { runSchedule, schedules } from '../schedules/builtins.js';
import type { Handler } from './builtins/common.js';
import { csv } from './builtins/csv.js';
import { help, targets } from './builtins/help.js';
import { page } from './builtins/paging.js';
import { audit, bind, lookup, unbind } from './builtins/records.js';
import { approve, cancel, deny, pending, status } from './builtins/requests.js';
import type { Builtin } from './catalog.js';

export const builtinHandlers: Record<Builtin, Handler> = {
  help,
  targets,
  pending,
  status,
  approve,
  deny,
  cancel,
  audit,
  lookup,
  bind,
  unbind,
  alerts,
  history,
  page,
  csv,
  trend,
  digest,
  schedules,
  'run-schedule': runSchedule,
};
