-- no-transaction
-- The scheduled purge deletes login-attempt rows quiet for 24 hours; this index finds them
-- without scanning the table. Built concurrently (hence outside a transaction, and alone in its
-- file) so that logins keep writing to a live table while it builds. Should a build be
-- interrupted, Postgres leaves an invalid index behind: `drop index concurrently
-- login_attempts_last_failed_at_idx;` and invoke migrate again.
create index concurrently login_attempts_last_failed_at_idx on login_attempts (last_failed_at);
