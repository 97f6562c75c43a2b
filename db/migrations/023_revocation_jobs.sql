-- iothub schema, version 23: bulk revocation jobs (POST /v1/revocations). A job names a
-- selection (devices, serials, a product or an issuing CA, optionally within a window of
-- issuance); a node's engine (server/revjobs.c) copies the valid certificates it selects into
-- revocation_job_items, then revokes them 1,000 per transaction, each with its NOTIFYs.

CREATE TABLE revocation_jobs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The selection as accepted: {"device_ids": [..]} | {"serials": [..]} |
    -- {"product_key": k} | {"ca": serial}, with "issued_after"/"issued_before" for the last two.
    selector      jsonb NOT NULL,
    product_id    bigint REFERENCES products (id),  -- resolved product_key
    ca_id         integer REFERENCES cas (id),      -- resolved ca
    issued_after  timestamptz,
    issued_before timestamptz,
    reason        smallint NOT NULL CHECK (reason BETWEEN 0 AND 10),
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed')),
    selected      boolean NOT NULL DEFAULT false,   -- the items are in revocation_job_items
    total         integer NOT NULL DEFAULT 0,       -- valid certificates selected
    done          integer NOT NULL DEFAULT 0,       -- revoked by this job
    skipped       integer NOT NULL DEFAULT 0,       -- revoked meanwhile by someone else
    failed        integer NOT NULL DEFAULT 0,       -- left when the job failed
    error         text,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    heartbeat_at  timestamptz                       -- a running job's node is alive
);
-- The engine's claim: queued jobs, and running ones whose node stopped beating.
CREATE INDEX revocation_jobs_open ON revocation_jobs (created_at) WHERE state IN ('queued', 'running');

CREATE TABLE revocation_job_items (
    job_id  uuid NOT NULL REFERENCES revocation_jobs (id) ON DELETE CASCADE,
    serial  text NOT NULL,
    PRIMARY KEY (job_id, serial)
);

-- Selection by issuing CA and window of issuance without a scan of all certificates.
CREATE INDEX certificates_valid_issued ON certificates (ca_id, created_at) WHERE status = 'valid';
