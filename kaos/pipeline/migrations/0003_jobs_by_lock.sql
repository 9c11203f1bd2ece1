-- Reading an environment lock by hash asks which workspaces' jobs name it (as 0002 does for
-- sources, data and outputs): indexed, so the check is a lookup, not a scan of every job.
CREATE INDEX jobs_by_lock ON jobs (lock);
