-- Several servers (replicas) on one catalog (kaos/pipeline/leases.py): a job is held by the
-- replica that claimed it until its lease expires; a kill request waits in the row for the
-- owner's heartbeat; logs are kept here in chunks, so every replica serves every job's log.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until REAL;
ALTER TABLE jobs ADD COLUMN kill_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_state ON jobs (state);
CREATE TABLE replicas (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, home TEXT NOT NULL,
    started REAL NOT NULL, seen REAL NOT NULL);
CREATE TABLE job_logs (
    job_id TEXT NOT NULL, start INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (job_id, start));
