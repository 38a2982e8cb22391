-- The lifecycle of partition copies (docs/protocol.md §5.14): each followed
-- partition's key digest (SHA-256 of its partition key, as the follower's routes
-- key it), so that a subscribe after a restart continues from where the copy
-- stands; and when a local client last followed it (Unix ms; 0: learned_at), for
-- the follower's unsubscribe and retention rules.
ALTER TABLE follower_copies ADD COLUMN digest BLOB;
ALTER TABLE follower_copies ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;
