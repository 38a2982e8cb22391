-- How many mailbox entries a ChangeMailbox committed in the other process, so that a
-- running server counts them in its metrics (0 for every other kind).
ALTER TABLE change_log ADD COLUMN entries INTEGER NOT NULL DEFAULT 0;
