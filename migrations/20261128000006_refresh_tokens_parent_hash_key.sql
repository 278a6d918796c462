-- no-transaction
-- A refresh presenting an unknown or rotated token asks whether any token was rotated from it
-- (`parent_hash = $1`): without this index that is a scan of the whole table, which any client
-- can ask for with random tokens. Unique: a token is rotated at most once (a retry inside the
-- grace window gets the same successor back). Built concurrently, as 20261127000003.
create unique index concurrently refresh_tokens_parent_hash_key
    on refresh_tokens (parent_hash);
