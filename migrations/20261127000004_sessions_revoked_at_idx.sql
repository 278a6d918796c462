-- no-transaction
-- The scheduled purge finds sessions revoked long ago by this index (only revoked sessions are
-- in it). Built concurrently, as 20261127000003.
create index concurrently sessions_revoked_at_idx on sessions (revoked_at) where revoked_at is not null;
