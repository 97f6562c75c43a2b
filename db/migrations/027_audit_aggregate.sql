-- iothub schema, version 27 (issue 19, credential guessing): refused anonymous REST calls are
-- audited as one row per source address and minute with their count (api/audit_aggregate.c)
-- instead of a row each. count is 1 for every other row; aggregate_key ("source@minute") is
-- set only on the aggregated rows, so that every node adds to the same row.
ALTER TABLE audit_log ADD COLUMN count integer NOT NULL DEFAULT 1 CHECK (count >= 1);
ALTER TABLE audit_log ADD COLUMN aggregate_key text;
CREATE UNIQUE INDEX audit_log_aggregate ON audit_log (aggregate_key) WHERE aggregate_key IS NOT NULL;
