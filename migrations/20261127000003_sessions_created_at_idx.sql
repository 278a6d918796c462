-- no-transaction
-- The scheduled purge finds sessions past their absolute lifetime (created_at + the configured
-- SESSION_MAX_LIFETIME_SECONDS) by this index. Built concurrently, outside a transaction and
-- alone in its file, so that a live table keeps taking logins while it builds. Should a build
-- be interrupted, drop the invalid index (`drop index concurrently sessions_created_at_idx;`)
-- and invoke migrate again.
create index concurrently sessions_created_at_idx on sessions (created_at);
