-- A user's TOTP factor: its secret sealed with AES-256-GCM (`secret_sealed`: nonce, ciphertext
-- and tag) under the MFA key `secret_key_id`, bound to the row's user and id. Pending until its
-- first code confirms it; `last_used_step` is the last 30-second step whose code was accepted,
-- advanced by the statement that accepts one, so that no code counts twice.
create table mfa_factors (
    id uuid not null,
    user_id uuid not null,
    secret_key_id text not null,
    secret_sealed bytea not null,
    created_at timestamptz not null default now(),
    confirmed_at timestamptz,
    last_used_step bigint,
    last_used_at timestamptz,
    constraint mfa_factors_pkey primary key (id),
    constraint mfa_factors_user_id_fkey foreign key (user_id) references users (id) on delete cascade
);

-- At most one live factor and one enrolment in progress per user (a later enrolment replaces
-- the pending one).
create unique index mfa_factors_live_key on mfa_factors (user_id) where confirmed_at is not null;
create unique index mfa_factors_pending_key on mfa_factors (user_id) where confirmed_at is null;

-- Recovery codes, only as SHA-256 hashes; a used one keeps its row (`used_at`) until the set is
-- replaced.
create table recovery_codes (
    user_id uuid not null,
    code_hash bytea not null,
    created_at timestamptz not null default now(),
    used_at timestamptz,
    constraint recovery_codes_pkey primary key (user_id, code_hash),
    constraint recovery_codes_user_id_fkey foreign key (user_id) references users (id) on delete cascade
);
