-- iothub schema, version 17: durable MQTT state (issue 18). Persistent sessions, their
-- subscriptions, the QoS 1/2 deliveries queued or in flight for them, their QoS 2 inbound
-- packet ids, and retained messages, written in batches by server/mqtt_store.c and read back
-- at `serve` start. SQL in db/mqtt_state.c. No foreign keys: rows of one batch arrive in any
-- order from several nodes, and every write is idempotent instead.

-- Boot numbers: a message id is (boot << 32) | counter, unique across the fleet and restarts.
CREATE SEQUENCE mqtt_boot_seq;
-- Order of queue rows (across nodes: one sequence).
CREATE SEQUENCE mqtt_queue_seq;

CREATE TABLE mqtt_sessions (
    key text PRIMARY KEY,              -- the broker's session key: d:<device id>, s:<service id>/<client id>
    owner text,                        -- node name holding it; NULL: a single node
    expiry_s bigint NOT NULL,          -- seconds kept after disconnect (0: never)
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mqtt_sessions_owner ON mqtt_sessions (owner);

CREATE TABLE mqtt_subscriptions (
    session_key text NOT NULL,
    filter text NOT NULL,
    qos smallint NOT NULL CHECK (qos BETWEEN 0 AND 2),
    PRIMARY KEY (session_key, filter)
);

-- One row per message that a queue row or a retained row refers to; garbage-collected when
-- none does (hub_db_mqtt_gc).
CREATE TABLE mqtt_messages (
    id bigint PRIMARY KEY,
    topic text NOT NULL,
    payload bytea NOT NULL,
    qos smallint NOT NULL CHECK (qos BETWEEN 0 AND 2),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz             -- NULL: never (MQTT 5 message expiry, later)
);

CREATE TABLE mqtt_queue (
    session_key text NOT NULL,
    msg_id bigint NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('mqtt_queue_seq'),
    qos smallint NOT NULL CHECK (qos BETWEEN 1 AND 2),
    state smallint NOT NULL DEFAULT 0, -- enum hub_delivery_state: 0 queued, 1 sent, 2 PUBREL sent
    packet_id integer,
    PRIMARY KEY (session_key, msg_id)
);
CREATE INDEX mqtt_queue_msg ON mqtt_queue (msg_id);
CREATE INDEX mqtt_queue_order ON mqtt_queue (session_key, seq);

-- QoS 2 PUBLISHes received by a persistent session and awaiting PUBREL.
CREATE TABLE mqtt_incoming (
    session_key text NOT NULL,
    packet_id integer NOT NULL,
    PRIMARY KEY (session_key, packet_id)
);

CREATE TABLE mqtt_retained (
    topic text PRIMARY KEY,
    msg_id bigint NOT NULL
);
CREATE INDEX mqtt_retained_msg ON mqtt_retained (msg_id);
