-- The account lifecycle: email verification, password reset, the session list.
--
-- Every column added here is nullable without a default, so the statements change only the
-- catalog: no table is rewritten or scanned, and the lock each takes is held for moments.

-- Set once, when a verification (or a password reset, which proves the same mailbox) succeeds.
alter table users add column email_verified_at timestamptz;

-- What the session list shows of the device that signed in: its User-Agent (cut to 512
-- characters by the application) and the source address API Gateway saw.
alter table sessions add column user_agent text;
alter table sessions add column ip inet;

-- The link tokens sent by mail. Only their SHA-256 is stored, as for refresh tokens. One row per
-- user and kind: a newer token replaces the older one (which then matches nothing), and a used
-- token is deleted by the statement that consumes it, so a token works once.
create table mail_tokens (
    user_id uuid not null,
    kind text not null,
    token_hash bytea not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint mail_tokens_pkey primary key (user_id, kind),
    constraint mail_tokens_token_hash_key unique (token_hash),
    constraint mail_tokens_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint mail_tokens_kind_known check (kind in ('verify_email', 'reset_password')),
    constraint mail_tokens_token_hash_length check (octet_length(token_hash) = 32)
);

-- The scheduled purge finds expired tokens by this index.
create index mail_tokens_expires_at_idx on mail_tokens (expires_at);

-- The per-address sending limits, kept here so that they hold across every sandbox: the last
-- mail of each kind (one per 60 s), and a one-hour window of at most 5 mails of any kind. Rows
-- exist only for addresses that have an account; the row lock of the upsert serialises
-- concurrent requests for one address.
create table mail_quota (
    email text not null,
    verify_email_sent_at timestamptz,
    reset_password_sent_at timestamptz,
    window_started_at timestamptz not null,
    window_count integer not null,
    constraint mail_quota_pkey primary key (email),
    constraint mail_quota_window_count_positive check (window_count > 0)
);

create index mail_quota_window_started_at_idx on mail_quota (window_started_at);

-- Mails sent per clock hour, for the global cap (MAIL_HOURLY_LIMIT).
create table mail_hourly (
    hour timestamptz not null,
    sent integer not null,
    constraint mail_hourly_pkey primary key (hour)
);
