-- iothub schema, version 25: what GET /v1/nodes shows of each node (api/nodes.c). The node
-- writes its version at registration and its MQTT connection and session counts with every
-- heartbeat (every 2 s, server/cluster.c), never on the MQTT path.
ALTER TABLE nodes
    ADD COLUMN version text NOT NULL DEFAULT '' CHECK (length(version) <= 64),
    ADD COLUMN connections integer NOT NULL DEFAULT 0 CHECK (connections >= 0),
    ADD COLUMN sessions integer NOT NULL DEFAULT 0 CHECK (sessions >= 0);
