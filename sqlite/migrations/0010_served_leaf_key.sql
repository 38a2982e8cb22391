-- The SHA-256 of each KeyPackage's leaf signature key, copied to the served record when
-- it is served, so the hub can check that a Welcome at create_group names a KeyPackage
-- whose leaf is in the new group's tree. NULL for rows stored before this migration.
ALTER TABLE key_packages ADD COLUMN leaf_key_hash BLOB;
ALTER TABLE served_key_packages ADD COLUMN leaf_key_hash BLOB;
