-- The catalog as it was when migrations began (IF NOT EXISTS: catalogs made before that
-- already have these tables, and are adopted at this version).
CREATE TABLE IF NOT EXISTS workspaces (
    name TEXT PRIMARY KEY, created REAL NOT NULL, inputs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deploys (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL REFERENCES workspaces(name),
    author TEXT NOT NULL, time REAL NOT NULL, inputs TEXT NOT NULL, changed TEXT NOT NULL,
    force INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    source TEXT NOT NULL, builder TEXT NOT NULL, state TEXT NOT NULL, job_id TEXT NOT NULL,
    ref TEXT, lock TEXT, PRIMARY KEY (source, builder));
CREATE TABLE IF NOT EXISTS jobs (
    /*rowid*/ id TEXT PRIMARY KEY, kind TEXT NOT NULL, workspace TEXT NOT NULL,
    deploy_id INTEGER, state TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
    source TEXT, data TEXT, image TEXT, author TEXT NOT NULL, hyperopt INTEGER NOT NULL,
    parallelism INTEGER NOT NULL, reason TEXT, lock TEXT);
CREATE INDEX IF NOT EXISTS jobs_by_workspace ON jobs (workspace, kind, created);
CREATE TABLE IF NOT EXISTS models (
    job_id TEXT NOT NULL REFERENCES jobs(id), ind INTEGER NOT NULL, train_key TEXT NOT NULL,
    params TEXT, state TEXT NOT NULL, model_id TEXT, output_tree TEXT, metrics TEXT NOT NULL,
    started REAL, finished REAL, reason TEXT, node TEXT, PRIMARY KEY (job_id, ind));
CREATE INDEX IF NOT EXISTS models_by_key ON models (train_key, state);
CREATE INDEX IF NOT EXISTS models_by_id ON models (model_id);
CREATE TABLE IF NOT EXISTS endpoints (
    workspace TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, revision INTEGER,
    follow TEXT, options TEXT NOT NULL, created REAL NOT NULL, reason TEXT,
    PRIMARY KEY (workspace, name));
CREATE TABLE IF NOT EXISTS revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, name TEXT NOT NULL,
    model_id TEXT NOT NULL, state TEXT NOT NULL, cause TEXT NOT NULL, created REAL NOT NULL,
    parent INTEGER, started REAL, stopped REAL, port INTEGER, pid INTEGER,
    previous_model TEXT, metric TEXT, value REAL, previous_value REAL, reason TEXT,
    stats TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS revisions_by_endpoint ON revisions (workspace, name, id);
CREATE TABLE IF NOT EXISTS bundles (digest TEXT PRIMARY KEY, name TEXT NOT NULL);
