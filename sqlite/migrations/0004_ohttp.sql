-- Oblivious HTTP gateway keys (RFC 9458). key is ohttp.Key.MarshalBinary (it holds the
-- private key, so the store file must stay private to the provider).
CREATE TABLE ohttp_keys (
    key_id     INTEGER PRIMARY KEY,
    key        BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
