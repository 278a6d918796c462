-- The second factor's sign-in and step-up.
--
-- sessions.second_factor_at: when the session's user last proved their second factor (at sign-in
-- or in a step-up), beside `authenticated_at` (the last proof of any kind), so that a password
-- re-entered later renews the one without passing for the other. Nullable, no default: no
-- rewrite, no scan; the lock waits at most five seconds for the sessions in flight.
set local lock_timeout = '5s';
alter table sessions add column second_factor_at timestamptz;

-- A sign-in waiting for its second factor: a login (or a password reset) of a user with a live
-- factor proved the password and holds this token (`mfa_token`, only its SHA-256 stored) for five
-- minutes, once. The session it opens is described here (the device of the login), and each
-- wrong code it was presented with is counted (`failed_count`): after five the token is dead.
create table mfa_tokens (
    token_hash bytea not null,
    user_id uuid not null,
    user_agent text,
    ip inet,
    failed_count integer not null default 0,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint mfa_tokens_pkey primary key (token_hash),
    constraint mfa_tokens_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint mfa_tokens_token_hash_length check (octet_length(token_hash) = 32)
);

-- A reset, a password change or a factor's removal voids every token of the user by this index;
-- the scheduled purge finds expired ones by the other.
create index mfa_tokens_user_id_idx on mfa_tokens (user_id);
create index mfa_tokens_expires_at_idx on mfa_tokens (expires_at);

