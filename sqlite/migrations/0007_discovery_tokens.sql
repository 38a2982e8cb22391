-- Discovery bearer tokens are MACed (directory/token.go): nothing is stored per token
-- issued, only the secrets that sign them, the shared token's identity and the
-- revocation list. Tokens of the earlier table stop working: requesters holding one get
-- bad_token and discover again.
DROP TABLE discovery_tokens;

-- The secrets that sign discovery tokens; the newest unretired one signs new tokens.
-- AUTOINCREMENT: a retired secret's id is never reused.
CREATE TABLE discovery_secrets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);

-- The shared token, once the shared policy made one: at most one row, deleted when the
-- token is revoked or its secret retired (then the next discovery makes a new one).
CREATE TABLE discovery_shared_token (
    slot       INTEGER PRIMARY KEY CHECK (slot = 1),
    token_id   INTEGER NOT NULL,
    secret_id  INTEGER NOT NULL REFERENCES discovery_secrets(id),
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER
);

-- The revocation list by token: an entry stays until its token has expired (until;
-- NULL: kept).
CREATE TABLE discovery_revoked_tokens (
    token_id   INTEGER PRIMARY KEY,
    revoked_at INTEGER NOT NULL,
    until      INTEGER
);
CREATE INDEX discovery_revoked_tokens_until ON discovery_revoked_tokens (until);

-- The revocation list by user: the tokens of user_id (0: of every user, the shared token
-- included) issued before `before` (Unix ms) are revoked. User ids are never reused.
CREATE TABLE discovery_token_cutoffs (
    user_id INTEGER PRIMARY KEY,
    before  INTEGER NOT NULL
);

-- Set when a client's last resort was served for want of one-time KeyPackages and the
-- client was told; cleared when one of its one-time KeyPackages is served again.
ALTER TABLE key_package_low ADD COLUMN exhausted_at INTEGER;
