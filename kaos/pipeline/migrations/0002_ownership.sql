-- Workspaces belong to the user who made them and are shared by role (kaos.server.access).
-- A workspace made before this had no recorded maker: the author of its first deploy is the
-- best evidence of one; a workspace never deployed to stays without owner (admins only).
ALTER TABLE workspaces ADD COLUMN owner TEXT;
UPDATE workspaces SET owner = (
    SELECT d.author FROM deploys d WHERE d.workspace = workspaces.name ORDER BY d.id LIMIT 1);
CREATE TABLE shares (
    workspace TEXT NOT NULL, member TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (workspace, member));
-- Reading by hash asks which workspaces name a tree: these keep that a few index lookups.
CREATE INDEX jobs_by_source ON jobs (source);
CREATE INDEX jobs_by_data ON jobs (data);
CREATE INDEX models_by_output ON models (output_tree);
