-- no-transaction
-- The scheduled purge deletes refresh tokens revoked more than 7 days ago, found by this index
-- (only revoked tokens are in it) instead of a scan of the whole table. Built concurrently, as
-- 20261127000003.
create index concurrently refresh_tokens_revoked_at_idx
    on refresh_tokens (revoked_at) where revoked_at is not null;
