-- iothub schema, version 14: staged firmware rollouts. An image goes to a target (a
-- product, a list of devices, devices with a tag) in waves; each device reports its state
-- over MQTT (devices/<id>/firmware/state); a failure threshold halts the rollout by itself.

-- Device tags (rollout targets), set by PATCH /v1/devices/{id}; the version the device
-- last reported running.
ALTER TABLE devices ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
ALTER TABLE devices ADD COLUMN firmware_version text;
CREATE INDEX devices_tags ON devices USING gin (tags);

CREATE TABLE rollouts (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    firmware_id        uuid NOT NULL REFERENCES firmware (id),
    -- {"product_key": k} | {"device_ids": [..]} | {"tag": t}, as created.
    target             jsonb NOT NULL,
    -- Cumulative wave sizes as given: [10, "50%", "100%"]; the last wave takes the rest.
    waves              jsonb NOT NULL,
    wave_count         integer NOT NULL CHECK (wave_count BETWEEN 1 AND 100),
    wave_pause_s       integer NOT NULL DEFAULT 0 CHECK (wave_pause_s >= 0),
    -- A wave whose devices have not all finished after this long is settled anyway (the
    -- rest keep their rows and get the notice when they come back).
    wave_timeout_s     integer NOT NULL DEFAULT 86400 CHECK (wave_timeout_s > 0),
    -- Halts when failed + rolled_back reach failure_count, or failure_percent of the
    -- devices of the waves started so far (whichever is set).
    failure_count      integer CHECK (failure_count >= 1),
    failure_percent    integer CHECK (failure_percent BETWEEN 1 AND 100),
    state              text NOT NULL DEFAULT 'running'
                       CHECK (state IN ('running', 'paused', 'halted', 'cancelled', 'completed')),
    reason             text,
    current_wave       integer NOT NULL DEFAULT 0,
    wave_started_at    timestamptz NOT NULL DEFAULT now(),
    -- When the current wave settled (every device final or wave_timeout_s); the next one
    -- starts wave_pause_s later.
    wave_settled_at    timestamptz,
    -- Bumped on every resume: nodes re-send the notices of started waves.
    generation         integer NOT NULL DEFAULT 0,
    total              integer NOT NULL DEFAULT 0,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (failure_count IS NULL OR failure_percent IS NULL)
);
CREATE INDEX rollouts_created ON rollouts (created_at);
CREATE INDEX rollouts_active ON rollouts (state) WHERE state IN ('running', 'paused');

CREATE TABLE rollout_devices (
    rollout_id  uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    device_id   uuid NOT NULL REFERENCES devices (id),
    wave        integer NOT NULL,
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'notified', 'downloading', 'verifying', 'installing',
                                 'installed', 'failed', 'rolled_back', 'skipped')),
    reason      text,
    progress    bigint,
    -- true while the rollout is running or paused: a device is in at most one active
    -- rollout (a second one is refused with 409).
    active      boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rollout_id, device_id)
);
-- One active rollout per device; also "the device's rows to re-send on connect".
CREATE UNIQUE INDEX rollout_devices_active ON rollout_devices (device_id) WHERE active;
CREATE INDEX rollout_devices_device ON rollout_devices (device_id, updated_at);
-- A wave's devices by state (engine: who to notify, whether the wave settled).
CREATE INDEX rollout_devices_wave ON rollout_devices (rollout_id, wave, state);
