-- Users, their clients (devices) and admin credentials.
-- AUTOINCREMENT: ids are never reused, so a change-log entry about a removed client
-- can never hit a newer client.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE clients (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    mailbox_seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, name)
);

CREATE TABLE admin_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- The durable per-client mailbox: an entry stays until the client acknowledges it.
CREATE TABLE mailbox (
    client_id   INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    payload     BLOB NOT NULL,
    PRIMARY KEY (client_id, seq)
) WITHOUT ROWID;

-- Changes made by other processes (the admin CLI) that a running server must act on.
CREATE TABLE change_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL,
    client_id INTEGER,
    at        INTEGER NOT NULL
);
