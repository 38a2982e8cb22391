-- Partition subscriptions across providers (docs/protocol.md §5.11).
-- Follower side: each partition hosted elsewhere that this provider follows, the
-- hub that hosts it (the only peer whose pushes are taken), and where the local
-- copy stands; and the local copy of its log (the encoded Message of each entry,
-- or the terminated event).
CREATE TABLE follower_copies (
    masked     BLOB PRIMARY KEY,
    hub        TEXT NOT NULL,
    next       INTEGER NOT NULL DEFAULT 0,
    done       INTEGER NOT NULL DEFAULT 0,
    learned_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE follower_copy_log (
    masked     BLOB NOT NULL,
    counter    INTEGER NOT NULL,
    terminated INTEGER NOT NULL DEFAULT 0,
    message    BLOB NOT NULL,
    PRIMARY KEY (masked, counter)
) WITHOUT ROWID;

-- Hub side: each follower subscribed to a hosted partition, and the first counter
-- it does not hold yet (as its last answer said); done once it holds the
-- terminated event.
CREATE TABLE hub_push_subs (
    peer   TEXT NOT NULL,
    masked BLOB NOT NULL,
    next   INTEGER NOT NULL,
    done   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (peer, masked)
) WITHOUT ROWID;
