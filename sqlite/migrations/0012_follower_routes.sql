-- The follower's routes (follower/): which peer provider hosts a group hosted
-- elsewhere, which hosts a partition (by the SHA-256 of its partition key, so the
-- store never holds a key), and the hubs that sent a Welcome to (or sequenced an
-- external join of) one of this provider's clients. A route is recorded the first
-- time it is learned and never changed (docs/protocol.md §5.10).
CREATE TABLE follower_groups (
    group_id   BLOB PRIMARY KEY,
    hub        TEXT NOT NULL,
    learned_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE follower_partitions (
    key_digest BLOB PRIMARY KEY,
    hub        TEXT NOT NULL,
    learned_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE follower_client_hubs (
    client_id  INTEGER NOT NULL,
    hub        TEXT NOT NULL,
    learned_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, hub)
) WITHOUT ROWID;
