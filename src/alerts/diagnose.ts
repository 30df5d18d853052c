// Diagnostics for an alert's thread: a read command run through the core as the schedule's person, so the
// policy, the audit and the target's limits apply exactly as when that person types it.
import type { Config } from '../config/schema.js';
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

export function coreDiagnose(core: { config: Config; dispatch(inv: Invocation): Promise<Reply> }): Diagnose {
  return async (person, command) => {
    const reply = await core.dispatch(invocationOf(core.config, person, command));
    if (reply.status === 'ok' && reply.result) return renderResult(reply.result, { maxWidth: WIDTH });
    return reply.text || reply.message;
  };
}
