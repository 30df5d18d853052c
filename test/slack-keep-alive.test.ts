// The Slack Web API client's fetch over kept-alive connections: one connection for many calls, the SDK's
// own calls and results unchanged, and a peer that stalls, redirects or floods fails the call.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepAliveFetch } from '../src/surfaces/slack/keep-alive-fetch.js';

let server: Server;
let base: string;
const sockets = new Set<unknown>();
const bodies: string[] = [];
/** Each request's bytes and content type, for the multipart uploads. */
const raw: { bytes: Buffer; type: string }[] = [];

function handle(req: IncomingMessage, res: ServerResponse): void {
  sockets.add(req.socket);
  let body = '';
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => {
    body += c.toString();
    chunks.push(c);
  });
  req.on('end', () => {
    bodies.push(body);
    raw.push({ bytes: Buffer.concat(chunks), type: req.headers['content-type'] ?? '' });
    if (req.url === '/stall') return; // never answers
    if (req.url === '/redirect') {
      res.writeHead(302, { location: 'http://example.invalid/' }).end();
      return;
    }
    if (req.url === '/flood') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 'x');
      for (let i = 0; i < 20; i++) res.write(chunk);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-probe': 'yes' });
    res.end(JSON.stringify({ ok: true, channel: 'C1', ts: '1.2', echo: body }));
  });
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((done) => server.close(done));
});

describe('keepAliveFetch', () => {
  it('carries the SDK calls over one kept-alive connection, results unchanged', async () => {
    const fetch = keepAliveFetch(5_000);
    try {
      sockets.clear();
      const client = new WebClient('xoxb-test', {
        slackApiUrl: `${base}/api/`,
        fetch,
        timeout: 0,
        retryConfig: { retries: 0 },
      });
      for (let i = 0; i < 5; i++) {
        const result = await client.chat.postMessage({ channel: 'C1', text: `hello ${i}` });
        expect(result.ok).toBe(true);
        expect(String((result as { echo?: unknown }).echo)).toContain(`text=hello%20${i}`);
      }
      expect(sockets.size).toBe(1);
      const direct = await fetch(`${base}/x`, { method: 'POST', body: 'a=1' });
      expect(direct.status).toBe(200);
      expect(direct.headers.get('x-probe')).toBe('yes');
      expect(direct.headers.get('X-Probe')).toBe('yes');
      expect(direct.headers.get('x-missing')).toBeNull();
      // As a WebAPIHTTPError lists them: every header, lower-case names, sorted.
      const listed = [...direct.headers.entries()];
      expect(Object.fromEntries(listed)).toMatchObject({
        'content-type': 'application/json; charset=utf-8',
        'x-probe': 'yes',
      });
      expect(listed.map(([k]) => k)).toEqual([...listed.map(([k]) => k)].sort());
      expect(JSON.parse(await direct.text())).toMatchObject({ ok: true, echo: 'a=1' });
    } finally {
      fetch.close();
    }
  });

  it('fails a call that gets no answer, a redirect, and an oversized answer', async () => {
    const fetch = keepAliveFetch(300);
    try {
      await expect(fetch(`${base}/stall`, { method: 'POST', body: '' })).rejects.toThrow(/no answer/);
      await expect(
        fetch(`${base}/redirect`, { method: 'POST', body: '', redirect: 'error' }),
      ).rejects.toThrow(/redirect/);
      await expect(fetch(`${base}/flood`, { method: 'POST', body: '' })).rejects.toThrow(/over/);
      // A caller's abort ends the call too.
      const controller = new AbortController();
      const pending = fetch(`${base}/stall`, { method: 'POST', body: '', signal: controller.signal });
      controller.abort(new Error('stopped by the caller'));
      await expect(pending).rejects.toThrow(/stopped by the caller/);
    } finally {
      fetch.close();
    }
  });

  it('sends file uploads (FormData) as multipart over the same kept-alive connection', async () => {
    const fetch = keepAliveFetch(5_000);
    try {
      sockets.clear();
      const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) % 256);
      const form = new FormData();
      form.append('note', 'line one\nline two');
      form.append('we"ird\nname', 'x');
      form.append('body', new Blob([bytes]), 'a "quoted"\nname.csv');
      form.append('typed', new Blob(['a,b\r\n1,2\r\n'], { type: 'text/csv' }), 'typed.csv');
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${base}/upload`, { method: 'POST', body: form });
        expect(response.status).toBe(200);
        await fetch(`${base}/api/chat.postMessage`, { method: 'POST', body: 'channel=C1' });
      }
      // One connection for uploads and calls alike.
      expect(sockets.size).toBe(1);
      const sent = raw.at(-2);
      expect(sent?.type).toMatch(/^multipart\/form-data; boundary=/);
      // What a server makes of it (the WHATWG parser): every field, name and byte as the form had them.
      const parsed = await new Response(new Uint8Array(sent?.bytes ?? Buffer.alloc(0)), {
        headers: { 'content-type': sent?.type ?? '' },
      }).formData();
      expect(parsed.get('note')).toBe('line one\r\nline two');
      expect(parsed.get('we"ird\r\nname')).toBe('x');
      const file = parsed.get('body') as File;
      expect(file.name).toBe('a "quoted"\nname.csv');
      expect(new Uint8Array(await file.arrayBuffer())).toEqual(bytes);
      const typed = parsed.get('typed') as File;
      expect(typed.type).toBe('text/csv');
      expect(await typed.text()).toBe('a,b\r\n1,2\r\n');
      expect(sent?.bytes.toString('latin1')).toContain('filename="a %22quoted%22%0Aname.csv"');
    } finally {
      fetch.close();
    }
  });
});
