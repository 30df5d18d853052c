// When a Discord `/db` command is answered at once and when it is deferred ("thinking…"): the answer
// window counted from receipt, never past Discord's 3-second deadline for the initial response.

/** How long a `/db` command may take before it is deferred: answers within it need no "thinking…". */
export const ANSWER_WINDOW_MS = 1_500;
/** Discord's deadline for the initial response, counted from the interaction's creation. */
const INITIAL_RESPONSE_MS = 3_000;
/** Kept free before that deadline for the deferral's own round trip (and clocks that disagree). */
const DEFERRAL_MARGIN_MS = 1_000;

/**
 * How much longer to wait for the answer before deferring: the window counted from receipt, never past
 * Discord's deadline less the margin (counted from the id's timestamp), never negative.
 */
export function answerWindow(
  createdAt: number,
  receivedAt: number,
  now: number,
  windowMs = ANSWER_WINDOW_MS,
): number {
  const ours = receivedAt + windowMs - now;
  const discords = createdAt + INITIAL_RESPONSE_MS - DEFERRAL_MARGIN_MS - now;
  return Math.max(0, Math.min(ours, discords));
}

/** True when `work` settled (either way) within `ms`. */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  if (ms <= 0) return false;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((done) => {
    timer = setTimeout(() => done(false), ms);
  });
  const settled = work.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
