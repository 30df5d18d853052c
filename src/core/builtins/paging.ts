// `/db page <ref> <n>`: what a "Next page" button sends. It carries only the reference of the answer it
// sits under; the read is looked up by it and run again as whoever pressed, under the policy in force.
import { UserError } from '../errors.js';
import { parseCommand } from '../grammar.js';
import { isRef } from '../refs.js';
import { argumentsAfterTarget, type Handler, words } from './common.js';

const USAGE = 'usage: /db page <ref> <page> (what a "Next page" button sends)';

export const page: Handler = async (core, ctx, tokens) => {
  const [refText, pageText] = words(tokens);
  if (
    refText === undefined ||
    !isRef(refText) ||
    pageText === undefined ||
    !/^[1-9]\d{0,6}$/.test(pageText)
  ) {
    throw new UserError('invalid_argument', `which page? ${USAGE}`);
  }
  const ref = refText.toLowerCase();
  const read = await core.state.getPagedRead(ref, core.now());
  if (!read) {
    return await core.refuse(
      ctx,
      'not_found',
      `the page button of ${ref} is out of date or unknown, so nothing was run; run the command again (the answer's last line names it)`,
    );
  }
  const target = core.config.targets[read.target];
  const parsed = parseCommand(`${read.command} --page ${pageText}`);
  const spec = target ? core.catalog.resolve(parsed.operation, target) : undefined;
  if (!target || !spec) {
    return await core.refuse(
      ctx,
      'not_found',
      `${read.command} is no longer available (its target or operation changed), so nothing was run`,
    );
  }
  return await core.runOperation(ctx, spec, target, argumentsAfterTarget(parsed, target.name));
};
