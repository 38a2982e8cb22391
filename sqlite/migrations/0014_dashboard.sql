-- The admin dashboard (web/): read-only admin tokens, admin passwords (argon2id,
-- encoded with their parameters), and the audit log of every admin change.
ALTER TABLE admin_tokens ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;

CREATE TABLE admin_passwords (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL,
    read_only  INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE TABLE admin_audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
