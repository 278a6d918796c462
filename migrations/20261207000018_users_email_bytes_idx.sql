-- no-transaction
-- The admin API's search by address prefix, in byte order ("C"): a range on this index whatever
-- the database's collation, and one plan however the prefix is bound. Built concurrently, so
-- signups keep writing while it builds (hence outside a transaction, and alone in its file).
-- Should a build be interrupted, Postgres leaves an invalid index behind: `drop index
-- concurrently users_email_bytes_idx;` and invoke migrate again.
create index concurrently users_email_bytes_idx on users ((email collate "C"));
