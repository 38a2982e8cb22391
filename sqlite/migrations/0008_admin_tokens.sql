-- Admin tokens can expire (NULL: never) and record when they last authenticated a
-- request (NULL: never; written at most once a minute per token). revoked_at exists
-- since 0001.
ALTER TABLE admin_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE admin_tokens ADD COLUMN last_used_at INTEGER;
