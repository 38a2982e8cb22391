-- The hub: hosted groups, their partitions (one per epoch of each fork), the
-- partition logs, Welcomes waiting for delivery, provider-wide bans, reports.
-- Partition keys are never stored: partitions are named by their masked key,
-- Hash(partition_key).
CREATE TABLE hub_groups (
    group_id       BLOB PRIMARY KEY,
    cipher_suite   INTEGER NOT NULL,
    creator_client INTEGER NOT NULL,
    creator_user   TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE hub_partitions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- opening order
    masked        BLOB NOT NULL UNIQUE,
    group_id      BLOB NOT NULL REFERENCES hub_groups(group_id),
    parent        INTEGER REFERENCES hub_partitions(id),
    opened_by     INTEGER,                 -- counter of the opening commit in parent
    epoch         INTEGER NOT NULL,
    verified      INTEGER NOT NULL,
    group_info    BLOB,
    ratchet_tree  BLOB,
    length        INTEGER NOT NULL DEFAULT 0,
    terminated_at INTEGER,
    created_at    INTEGER NOT NULL
);
CREATE INDEX hub_partitions_group ON hub_partitions(group_id, id);
CREATE INDEX hub_partitions_parent ON hub_partitions(parent);

CREATE TABLE hub_log (
    partition     INTEGER NOT NULL REFERENCES hub_partitions(id),
    counter       INTEGER NOT NULL,
    content_type  INTEGER NOT NULL,
    public        INTEGER NOT NULL,
    message       BLOB NOT NULL,
    next          INTEGER REFERENCES hub_partitions(id), -- commits: the partition opened
    sender_client INTEGER NOT NULL,
    request_hash  BLOB NOT NULL UNIQUE,
    at            INTEGER NOT NULL,
    PRIMARY KEY (partition, counter)
);

CREATE TABLE hub_welcomes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id   BLOB NOT NULL,
    provider   TEXT NOT NULL,
    client_id  INTEGER NOT NULL,            -- 0: another provider
    refs       BLOB NOT NULL,               -- KeyPackageRef refs<V>, TLS-encoded
    welcome    BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX hub_welcomes_provider ON hub_welcomes(provider, id);

CREATE TABLE hub_bans (
    user_uri TEXT PRIMARY KEY,
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE hub_reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    reporter_client INTEGER NOT NULL,
    reporter_user   TEXT NOT NULL,
    kind            INTEGER NOT NULL,
    group_id        BLOB NOT NULL,
    subject         BLOB NOT NULL,
    reason          TEXT NOT NULL
);
