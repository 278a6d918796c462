-- The second factor's sign-in and step-up.
--
-- sessions.second_factor_at: when the session's user last proved their second factor (at sign-in
-- or in a step-up), beside `authenticated_at` (the last proof of any kind), so that a password
-- re-entered later renews the one without passing for the other. Nullable, no default: no
-- rewrite, no scan; the lock waits at most five seconds for the sessions in flight.
set local lock_timeout = '5s';
alter table sessions add column second_factor_at timestamptz;

-- Every factor row of a user, live or pending, by one index: a login locks them all to read a
-- confirmation that committed while it waited.
create index mfa_factors_user_id_idx on mfa_factors (user_id);

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


-- "This wasn't me": each change to a user's second factor (a factor added or removed, recovery
-- codes renewed) mails its owner a link whose token (only its SHA-256 here) undoes it for seven
-- days. The row holds the factor and the unused recovery codes as they were before the change
-- (the factor's secret still sealed), which the undo puts back; it also ends every session.
create table security_undo_tokens (
    token_hash bytea not null,
    user_id uuid not null,
    change text not null,
    factor_id uuid,
    factor_key_id text,
    factor_sealed bytea,
    factor_confirmed_at timestamptz,
    factor_last_used_step bigint,
    code_hashes bytea[] not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint security_undo_tokens_pkey primary key (token_hash),
    constraint security_undo_tokens_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint security_undo_tokens_change_known
        check (change in ('factor_added', 'factor_removed', 'recovery_codes_renewed')),
    constraint security_undo_tokens_token_hash_length check (octet_length(token_hash) = 32)
);

create index security_undo_tokens_user_id_idx on security_undo_tokens (user_id);
create index security_undo_tokens_expires_at_idx on security_undo_tokens (expires_at);
