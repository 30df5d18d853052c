// Databases shaped exactly as the runbooks' own SQL describes them (their tables and columns, nothing more).

/** kasm.md's tables, each with only the columns its queries name. */
export const KASM_RUNBOOK_SCHEMA = `
CREATE TABLE images (image_id uuid PRIMARY KEY, friendly_name text NOT NULL, enabled boolean NOT NULL,
                     cores numeric NOT NULL, memory bigint NOT NULL);
CREATE TABLE managers (manager_id uuid PRIMARY KEY, manager_hostname text NOT NULL, zone_id uuid);
CREATE TABLE servers (server_id uuid PRIMARY KEY, hostname text NOT NULL, zone_id uuid, enabled boolean NOT NULL);
CREATE TABLE storage_providers (storage_provider_id uuid PRIMARY KEY, storage_provider_type text NOT NULL,
                                enabled boolean NOT NULL);
CREATE TABLE users (user_id uuid PRIMARY KEY, username text NOT NULL, realm text NOT NULL,
                    locked boolean NOT NULL, disabled boolean NOT NULL);
CREATE TABLE sessions (session_id uuid PRIMARY KEY, user_id uuid, start_date timestamp NOT NULL,
                       status text NOT NULL);
CREATE TABLE session_tokens (expiration timestamp NOT NULL);

INSERT INTO images
SELECT md5('img' || i)::uuid, 'Workspace ' || chr(65 + (i * 7) % 26) || i, i % 5 <> 0, 1 + i % 4,
       (1024 + 512 * (i % 6)) * 1048576::bigint
  FROM generate_series(1, 15) i;
INSERT INTO managers VALUES
  (md5('m1')::uuid, 'kasm-web-01', md5('z1')::uuid),
  (md5('m2')::uuid, 'ip-10-20-4-17', md5('z2')::uuid);
INSERT INTO servers SELECT md5('s' || i)::uuid, 'agent-' || i, md5('z' || (1 + i % 2))::uuid, i <> 3
  FROM generate_series(1, 5) i;
INSERT INTO storage_providers VALUES
  (md5('p1')::uuid, 'dropbox', true), (md5('p2')::uuid, 's3', false), (md5('p3')::uuid, 'gdrive', true);
INSERT INTO users
SELECT md5('u' || i)::uuid, CASE WHEN i = 1 THEN 'Admin@Kasm.Local' ELSE 'user' || i || '@example.com' END,
       (ARRAY['local', 'ldap', 'saml'])[1 + i % 3], i % 11 = 0, i % 7 = 0
  FROM generate_series(1, 60) i;
INSERT INTO sessions
SELECT md5('k' || i)::uuid, md5('u' || (1 + i % 20))::uuid, timestamp '2026-01-01' + i * interval '1 hour',
       (ARRAY['running', 'running', 'stopped', 'paused'])[1 + i % 4]
  FROM generate_series(1, 80) i;
INSERT INTO session_tokens
SELECT now() + (i - 30) * interval '1 day' FROM generate_series(1, 50) i;
`;
