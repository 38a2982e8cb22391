-- What each client's mailbox holds, kept by the transactions that enqueue and ack, so
-- that the quota check on enqueue reads one row: entries not yet acknowledged and the
-- sum of their payload lengths.
ALTER TABLE clients ADD COLUMN mailbox_entries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN mailbox_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE clients SET
    mailbox_entries = (SELECT count(*) FROM mailbox WHERE client_id = clients.id),
    mailbox_bytes = (SELECT COALESCE(sum(length(payload)), 0) FROM mailbox WHERE client_id = clients.id);
