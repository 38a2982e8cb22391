-- Federation links (federation/): the allow-list of peer providers, each peer's
-- outbound queue (the source of truth for what is still to be delivered), the dedup
-- records of what each peer sent us, and the link state the running server records.

-- A peer on the allow-list. Exactly one of ca_pem (a PEM bundle of CA certificates
-- that prove the domain) and pin (the SHA-256 of the peer's certificate) is set.
-- out_stream names our outbound stream toward the peer; next_id is the id its next
-- envelope gets.
CREATE TABLE federation_peers (
    domain     TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    ca_pem     BLOB,
    pin        BLOB,
    out_stream INTEGER NOT NULL,
    next_id    INTEGER NOT NULL DEFAULT 1,
    added_at   INTEGER NOT NULL,
    CHECK ((ca_pem IS NULL) != (pin IS NULL))
);

-- Envelopes waiting for the peer's answer; a row goes when the answer is committed.
CREATE TABLE federation_outbound (
    peer        TEXT NOT NULL REFERENCES federation_peers (domain) ON DELETE CASCADE,
    id          INTEGER NOT NULL,
    type        INTEGER NOT NULL,
    body        BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL,
    PRIMARY KEY (peer, id)
) WITHOUT ROWID;

-- The stream a peer sends us on and the highest envelope id applied from it.
CREATE TABLE federation_inbox_streams (
    peer    TEXT PRIMARY KEY REFERENCES federation_peers (domain) ON DELETE CASCADE,
    stream  INTEGER NOT NULL,
    highest INTEGER NOT NULL
);

-- The reply to each recent envelope of a peer: code 0 is an ack with body, any
-- other code an error envelope whose message is body.
CREATE TABLE federation_inbox (
    peer TEXT NOT NULL REFERENCES federation_peers (domain) ON DELETE CASCADE,
    id   INTEGER NOT NULL,
    code INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (peer, id)
) WITHOUT ROWID;

-- What the running server last recorded about its link with each peer.
CREATE TABLE federation_peer_status (
    peer          TEXT PRIMARY KEY REFERENCES federation_peers (domain) ON DELETE CASCADE,
    state         TEXT NOT NULL,
    dialer        TEXT NOT NULL,
    since         INTEGER NOT NULL,
    last_error    TEXT NOT NULL,
    last_error_at INTEGER,
    attempts      INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
