import { describe, expect, it } from 'vitest';
import { redactSecrets } from '../src/core/log.js';

describe('redactSecrets', () => {
  it('removes passwords from connection strings and chat tokens from any text', () => {
    expect(redactSecrets('connect postgres://bot:s3cret@db:5432/kasm failed')).toBe(
      'connect postgres://bot:***@db:5432/kasm failed',
    );
    expect(redactSecrets(`token ${'xoxb'}-1234567890-abcdefghij`)).not.toContain('1234567890');
    expect(redactSecrets('app xapp-1-A0123-456-abc')).toBe('app xapp-***');
    const discord = 'MTA5ODc2NTQzMjEwOTg3NjU0MzI.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB';
    expect(redactSecrets(`login with ${discord}`)).toBe('login with ***discord-token***');
    expect(redactSecrets('password=hunter2 host=db')).toBe('password=*** host=db');
  });
});
