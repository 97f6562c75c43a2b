-- iothub schema, version 19: several nodes on one database (docs/operations.md). Each
-- running iothubd registers under its node_name and holds a session-level advisory lock
-- (19019, nodes.id) on its LISTEN connection for as long as it lives: a peer that can take
-- that lock knows at once that the node is dead. devices.connected_node tells which node
-- holds a device's MQTT connection (written by that node's presence writer, cleared by the
-- node that finds it dead). Which node holds a persistent session is mqtt_sessions.owner
-- (017).
CREATE TABLE nodes (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    api_address text NOT NULL DEFAULT '' CHECK (length(api_address) <= 300),
    mqtt_address text NOT NULL DEFAULT '' CHECK (length(mqtt_address) <= 300)
);
ALTER TABLE devices ADD COLUMN connected_node integer REFERENCES nodes (id) ON DELETE SET NULL;
CREATE INDEX devices_connected_node ON devices (connected_node) WHERE connected_node IS NOT NULL;

-- The directory of persistent subscriptions held by other nodes (server/directory.c): every
-- node reloads it when a subscription changes or a session changes hands (delivered at
-- commit, once per transaction).
CREATE FUNCTION iothub_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('iothub_directory', '');
    RETURN NULL;
END $$;
CREATE TRIGGER mqtt_subscriptions_directory AFTER INSERT OR UPDATE OR DELETE ON mqtt_subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION iothub_directory_changed();
CREATE TRIGGER mqtt_sessions_directory AFTER UPDATE OF owner ON mqtt_sessions
    FOR EACH ROW WHEN (OLD.owner IS DISTINCT FROM NEW.owner)
    EXECUTE FUNCTION iothub_directory_changed();
