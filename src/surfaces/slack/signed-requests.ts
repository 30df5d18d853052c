// What a Slack HTTP request must be before anything acts on it: signed with the app's signing secret,
// recent, small, and parseable. Used by the acknowledging thread (ack-thread.ts); no Bolt, no dbops state.
import { createHmac, type KeyObject, timingSafeEqual } from 'node:crypto';

/** Slack refuses nothing older; neither do we (replays of captured requests). */
export const MAX_AGE_SECONDS = 5 * 60;
/** Slack's payloads are small; anything larger is not Slack. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Why a request was refused: for the log line and the metric's label (never the body itself). */
export type RefusalReason = 'bad_signature' | 'stale_timestamp' | 'too_large' | 'unparseable';

/** `v0=` and 64 hex digits: the only shape of signature Slack sends. */
const SIGNATURE_SHAPE = /^v0=[0-9a-f]{64}$/;

/**
 * Checks `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` and the timestamp's age; undefined when the
 * request is Slack's, else why not (both are answered 401). The MAC is computed over the body's bytes as
 * they came and compared with the signature's 32 bytes in constant time; only the signature's public
 * shape (`v0=` and 64 lowercase hex digits) is checked before, so no hex string is built per request.
 */
export function signatureProblem(
  secret: string | KeyObject,
  timestamp: string | undefined,
  signature: string | undefined,
  body: string | Buffer,
  nowSeconds: number,
): 'bad_signature' | 'stale_timestamp' | undefined {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return 'bad_signature';
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_AGE_SECONDS) return 'stale_timestamp';
  if (!SIGNATURE_SHAPE.test(signature)) return 'bad_signature';
  const given = Buffer.from(signature.slice(3), 'hex');
  const wanted = createHmac('sha256', secret).update(`v0:${timestamp}:`).update(body).digest();
  return timingSafeEqual(given, wanted) ? undefined : 'bad_signature';
}

export function verifySignature(
  secret: string | KeyObject,
  timestamp: string | undefined,
  signature: string | undefined,
  body: string | Buffer,
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
