// What a Slack HTTP request must be before anything acts on it: signed with the app's signing secret,
// recent, small, and parseable. Used by the acknowledging thread (ack-thread.ts); no Bolt, no dbops state.
import { createHmac, type KeyObject, timingSafeEqual } from 'node:crypto';

/** Slack refuses nothing older; neither do we (replays of captured requests). */
export const MAX_AGE_SECONDS = 5 * 60;
/** Slack's payloads are small; anything larger is not Slack. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Why a request was refused: for the log line and the metric's label (never the body itself). */
export type RefusalReason = 'bad_signature' | 'stale_timestamp' | 'too_large' | 'unparseable';

/**
 * Checks `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` (compared in constant time) and the
 * timestamp's age; undefined when the request is Slack's, else why not (both are answered 401).
 */
export function signatureProblem(
  secret: string | KeyObject,
  timestamp: string | undefined,
  signature: string | undefined,
  body: string,
  nowSeconds: number,
): 'bad_signature' | 'stale_timestamp' | undefined {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return 'bad_signature';
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_AGE_SECONDS) return 'stale_timestamp';
  const expected = `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  const given = Buffer.from(signature);
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted) ? undefined : 'bad_signature';
}

export function verifySignature(
  secret: string | KeyObject,
  timestamp: string | undefined,
  signature: string | undefined,
  body: string,
  nowSeconds: number,
): boolean {
  return signatureProblem(secret, timestamp, signature, body, nowSeconds) === undefined;
}

/**
 * Whether a body must be parsed before it is answered: JSON (the Events API: Slack's URL check is answered
 * with its challenge, a garbled body with 400). Forms (slash commands, interactions) can be answered first.
 */
export function parsesBeforeAck(contentType: string | undefined): boolean {
  return contentType?.includes('application/json') === true;
}

/** The body as Bolt expects it: form fields, an interaction's `payload` JSON, or an Events API JSON. */
export function parseBody(raw: string, contentType: string | undefined): Record<string, unknown> {
  if (contentType?.includes('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  const form = Object.fromEntries(new URLSearchParams(raw));
  return typeof form.payload === 'string' ? (JSON.parse(form.payload) as Record<string, unknown>) : form;
}
