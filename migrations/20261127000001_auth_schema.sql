-- Users, their sessions (one per login: the refresh-token family) and the rotating refresh tokens.
-- Every constraint and index is named: the application maps violations by name.

create table users (
    id uuid not null,
    email text not null,
    password_hash text not null,
    created_at timestamptz not null default now(),
    constraint users_pkey primary key (id),
    constraint users_email_key unique (email),
    constraint users_email_normalised check (email = lower(btrim(email)))
);

create table sessions (
    id uuid not null,
    user_id uuid not null,
    created_at timestamptz not null default now(),
    revoked_at timestamptz,
    constraint sessions_pkey primary key (id),
    constraint sessions_user_id_fkey foreign key (user_id) references users (id) on delete cascade
);

create index sessions_user_id_idx on sessions (user_id);

-- Only the SHA-256 of a refresh token is stored; the token itself exists only in responses.
create table refresh_tokens (
    token_hash bytea not null,
    session_id uuid not null,
    parent_hash bytea,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    revoked_at timestamptz,
    constraint refresh_tokens_pkey primary key (token_hash),
    constraint refresh_tokens_session_id_fkey foreign key (session_id) references sessions (id) on delete cascade,
    constraint refresh_tokens_token_hash_length check (octet_length(token_hash) = 32)
);

create index refresh_tokens_session_id_idx on refresh_tokens (session_id);

-- A session has at most one usable refresh token at any time, whatever the application does.
create unique index refresh_tokens_one_active_per_session_idx
    on refresh_tokens (session_id)
    where revoked_at is null;

-- Consecutive failed logins per normalised email, whether or not an account exists,
-- so that the state reveals nothing about which emails are registered.
create table login_attempts (
    email text not null,
    failed_count integer not null,
    last_failed_at timestamptz not null default now(),
    constraint login_attempts_pkey primary key (email),
    constraint login_attempts_failed_count_positive check (failed_count > 0)
);
