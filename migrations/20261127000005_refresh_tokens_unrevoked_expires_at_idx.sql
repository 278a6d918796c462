-- no-transaction
-- The scheduled purge finds abandoned sessions (their one usable token expired unused) by this
-- index. Built concurrently, as 20261127000003.
create index concurrently refresh_tokens_unrevoked_expires_at_idx
    on refresh_tokens (expires_at) where revoked_at is null;
