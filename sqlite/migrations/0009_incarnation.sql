-- The store's incarnation: a random id minted when the store is created and again
-- whenever committed writes may have been lost (a damaged or deleted WAL, a restored
-- backup); clients see it in auth_ok and start their marks over when it changes.
-- commits counts every write transaction; a mark file beside the store
-- (mimids.db.mark) records the highest count the server saw committed, so that a
-- store that went back in time is noticed at the next start.
CREATE TABLE store_meta (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    incarnation BLOB NOT NULL,
    commits     INTEGER NOT NULL DEFAULT 0,
    minted_at   INTEGER NOT NULL, -- Unix milliseconds
    mint_reason TEXT NOT NULL
);
INSERT INTO store_meta (id, incarnation, commits, minted_at, mint_reason)
    VALUES (1, randomblob(16), 0, CAST(unixepoch('subsec') * 1000 AS INTEGER), 'created');

-- One row rewritten by every readiness probe: /readyz proves the store can commit.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL -- Unix milliseconds
);
