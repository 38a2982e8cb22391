-- KeyPackages uploaded by this provider's clients, served to other providers' fetches.
-- not_after is the lifetime end in Unix seconds; other times are Unix milliseconds.
CREATE TABLE key_packages (
    id           INTEGER PRIMARY KEY,
    ref          BLOB NOT NULL UNIQUE,
    client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    cipher_suite INTEGER NOT NULL,
    last_resort  INTEGER NOT NULL DEFAULT 0,
    not_after    INTEGER NOT NULL,
    uploaded_at  INTEGER NOT NULL,
    serves       INTEGER NOT NULL DEFAULT 0,
    data         BLOB NOT NULL
);
CREATE INDEX key_packages_stock ON key_packages (client_id, cipher_suite, version, last_resort, not_after);
CREATE UNIQUE INDEX key_packages_last_resort ON key_packages (client_id, cipher_suite) WHERE last_resort = 1;
CREATE INDEX key_packages_expiry ON key_packages (not_after);

-- Non-last-resort KeyPackages per client, suite and version (expired ones included until
-- a claim or a purge deletes them), kept by the triggers below, so that a claim picks
-- the client with the most stock without counting rows.
CREATE TABLE key_package_counts (
    client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    cipher_suite INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    available    INTEGER NOT NULL,
    PRIMARY KEY (client_id, cipher_suite, version)
) WITHOUT ROWID;

CREATE TRIGGER key_packages_count_insert AFTER INSERT ON key_packages WHEN NEW.last_resort = 0 BEGIN
    INSERT INTO key_package_counts (client_id, cipher_suite, version, available)
        VALUES (NEW.client_id, NEW.cipher_suite, NEW.version, 1)
        ON CONFLICT (client_id, cipher_suite, version) DO UPDATE SET available = available + 1;
END;

CREATE TRIGGER key_packages_count_delete AFTER DELETE ON key_packages WHEN OLD.last_resort = 0 BEGIN
    UPDATE key_package_counts SET available = available - 1
        WHERE client_id = OLD.client_id AND cipher_suite = OLD.cipher_suite AND version = OLD.version;
END;

-- Every KeyPackage served (a last resort once per ref, with a serve count): where a
-- Welcome naming the ref goes. Kept until the KeyPackage expires.
CREATE TABLE served_key_packages (
    ref       BLOB PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    served_at INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    serves    INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX served_key_packages_expiry ON served_key_packages (not_after);
CREATE INDEX served_key_packages_client ON served_key_packages (client_id);

-- A row marks that a client was told its stock of a suite ran low; it is removed when
-- an upload brings the stock back to the threshold, so each crossing notifies once.
CREATE TABLE key_package_low (
    client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    cipher_suite INTEGER NOT NULL,
    notified_at  INTEGER NOT NULL,
    PRIMARY KEY (client_id, cipher_suite)
) WITHOUT ROWID;

-- Discovery bearer tokens, by SHA-256 hash. token holds the token itself for the shared
-- policy only (it is handed to every requester, so it must be readable); per-requester
-- tokens are bound to user_id and kept as hashes only.
CREATE TABLE discovery_tokens (
    id           INTEGER PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    token        TEXT,
    policy       TEXT NOT NULL CHECK (policy IN ('shared', 'per_requester')),
    user_id      INTEGER REFERENCES users(id) ON DELETE CASCADE,
    requester    TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    uses         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX discovery_tokens_shared ON discovery_tokens (policy, revoked_at);
CREATE INDEX discovery_tokens_expiry ON discovery_tokens (expires_at);
