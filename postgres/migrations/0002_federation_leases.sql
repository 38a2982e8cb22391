-- Leases of peer links among the nodes of one provider (scale-out; see
-- sqlite/migrations/0016): the node that holds a peer's lease, until expires_at
-- (Unix ms), runs its link; epoch increases each time the lease changes owner (a
-- fencing token).
CREATE TABLE federation_leases (
    peer       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    epoch      BIGINT NOT NULL
);
