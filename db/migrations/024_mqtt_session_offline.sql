-- iothub schema, version 24: session expiry across restarts (issue 18). When a persistent
-- session's connection closed (NULL while it is connected, or when it never was since this
-- column exists): at `serve` start and at a takeover, a session offline longer than its
-- expiry is deleted, the others keep the time they have left.
ALTER TABLE mqtt_sessions ADD COLUMN offline_at timestamptz;
