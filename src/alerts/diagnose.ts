// Diagnostics for an alert's thread: a read command run through the core as the schedule's person, so the
// policy, the audit and the target's limits apply exactly as when that person types it.
import type { Config } from '../config/schema.js';
import type { Catalog } from '../core/catalog.js';
import { renderResult } from '../core/render.js';
import type { Reply } from '../core/reply.js';
import type { Invocation, Surface } from '../core/types.js';
import type { Diagnose } from './observe.js';

const WIDTH = 80;

/** The identity a configured person is known by, as an invocation of that surface. */
function invocationOf(config: Config, person: string, text: string): Invocation {
  const found = config.people[person];
  if (!found) throw new Error(`person ${person} is not configured`);
  const { cli, slack, discord } = found.identities;
  const [surface, identity]: [Surface, string | undefined] = cli
    ? ['cli', cli]
    : slack
      ? ['slack', slack]
      : ['discord', discord];
  if (!identity) throw new Error(`person ${person} has no identity to run commands as`);
  return { surface, identity, text };
}

/**
 * Only plain read operations run as diagnostics: a result that names a write or destructive operation as
 * `next` (a pack's, say) must not make a schedule request or change anything.
 */
function plainRead(core: { config: Config; catalog: Catalog }, operation: string, target: string): boolean {
  const spec = core.catalog.resolve(operation, core.config.targets[target]);
  return spec !== undefined && spec.risk === 'read' && !spec.riskFor && !spec.actionFor;
}

export function coreDiagnose(core: {
  config: Config;
  catalog: Catalog;
  dispatch(inv: Invocation): Promise<Reply>;
}): Diagnose {
  return async (person, operation, target) => {
    if (!plainRead(core, operation, target)) {
      return `not run: ${operation} is not a read operation on ${target}, so it is never run for an alert`;
    }
    const reply = await core.dispatch(invocationOf(core.config, person, `/db ${operation} ${target}`));
    if (reply.status === 'ok' && reply.result) return renderResult(reply.result, { maxWidth: WIDTH });
    return reply.text || reply.message;
  };
}
