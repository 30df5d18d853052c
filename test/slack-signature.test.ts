import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifySignature } from '../src/surfaces/slack/signed-requests.js';

const secret = 'signing-secret-for-tests';
const sign = (timestamp: string, body: string) =>
  `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;

describe('Slack request signatures', () => {
  const now = 1_800_000_000;
  const body = 'command=%2Fdb&text=sizes+kasm';

  it('accepts a correctly signed fresh request', () => {
    expect(verifySignature(secret, String(now), sign(String(now), body), body, now)).toBe(true);
  });

  it('refuses a forged signature, a changed body, a stale or future timestamp, and missing headers', () => {
    const good = sign(String(now), body);
    const forged = `${good.slice(0, -1)}${good.endsWith('0') ? '1' : '0'}`;
    expect(verifySignature(secret, String(now), forged, body, now)).toBe(false);
    expect(verifySignature(secret, String(now), sign(String(now), body), `${body}&x=1`, now)).toBe(false);
    expect(verifySignature(secret, String(now - 301), sign(String(now - 301), body), body, now)).toBe(false);
    expect(verifySignature(secret, String(now + 301), sign(String(now + 301), body), body, now)).toBe(false);
    expect(verifySignature(secret, undefined, sign(String(now), body), body, now)).toBe(false);
    expect(verifySignature(secret, String(now), undefined, body, now)).toBe(false);
    expect(verifySignature('other-secret', String(now), sign(String(now), body), body, now)).toBe(false);
  });

  it('checks the bytes as they came, and refuses a signature of any other shape', () => {
    const good = sign(String(now), body);
    expect(verifySignature(secret, String(now), good, Buffer.from(body), now)).toBe(true);
    // Non-ASCII bodies: the MAC is over the UTF-8 bytes, as Slack computes it.
    const accented = 'command=%2Fdb&text=caf\u00e9';
    expect(
      verifySignature(secret, String(now), sign(String(now), accented), Buffer.from(accented), now),
    ).toBe(true);
    for (const shape of [
      good.toUpperCase(),
      good.slice(3),
      `v1=${good.slice(3)}`,
      `${good}0`,
      good.slice(0, -1),
      'v0=',
    ]) {
      expect(verifySignature(secret, String(now), shape, body, now)).toBe(false);
    }
    const notHex = `${good.slice(0, -1)}g`;
    expect(verifySignature(secret, String(now), notHex, body, now)).toBe(false);
  });
});
