-- Passkeys (WebAuthn discoverable credentials) and their ceremonies.
--
-- A user's passkey: the credential as webauthn-rs keeps it (`credential`: public key, signature
-- counter, backup flags; serialised JSON), its id as the authenticator presents it (unique
-- across users: one credential is one account's), the name its owner gave it, and, copied out of
-- `credential` for the statements that check them, the last signature counter and whether it is
-- a synced (backup-eligible) credential.
create table passkeys (
    id uuid not null,
    user_id uuid not null,
    credential_id bytea not null,
    credential jsonb not null,
    name text not null,
    backup_eligible boolean not null,
    sign_count bigint not null default 0,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    constraint passkeys_pkey primary key (id),
    constraint passkeys_credential_id_key unique (credential_id),
    constraint passkeys_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint passkeys_name_length check (char_length(name) between 1 and 64)
);

create index passkeys_user_id_idx on passkeys (user_id);

-- A WebAuthn ceremony between its begin and its finish: the state webauthn-rs needs to check
-- the answer (the challenge among it), for five minutes, used once (`delete ... returning`). Only
-- the SHA-256 of its `challenge_id` is stored. A registration belongs to a user's session; a
-- sign-in's (also used for a re-authentication) to no one, counted per source address instead
-- (`passkey_sources`).
create table webauthn_challenges (
    challenge_hash bytea not null,
    purpose text not null,
    user_id uuid,
    session_id uuid,
    state jsonb not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint webauthn_challenges_pkey primary key (challenge_hash),
    constraint webauthn_challenges_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint webauthn_challenges_purpose_known check (purpose in ('registration', 'authentication')),
    constraint webauthn_challenges_registration_owned
        check (purpose <> 'registration' or (user_id is not null and session_id is not null)),
    constraint webauthn_challenges_challenge_hash_length check (octet_length(challenge_hash) = 32)
);

-- One registration at a time per session (a later begin replaces it, found by this index); a
-- reset, a password change, a factor's removal or the undo link void a user's ceremonies by the
-- next; the scheduled purge finds expired ones by the last.
create unique index webauthn_challenges_registration_key on webauthn_challenges (session_id)
    where purpose = 'registration';
create index webauthn_challenges_user_id_idx on webauthn_challenges (user_id) where user_id is not null;
create index webauthn_challenges_expires_at_idx on webauthn_challenges (expires_at);

-- Sign-in ceremonies an anonymous source address (an IPv4 address, an IPv6 /64) began, in
-- windows of ten minutes: each writes a row above, so one client cannot fill the table.
create table passkey_sources (
    source text not null,
    window_started_at timestamptz not null,
    window_count integer not null,
    constraint passkey_sources_pkey primary key (source),
    constraint passkey_sources_window_count_positive check (window_count > 0)
);

create index passkey_sources_window_started_at_idx on passkey_sources (window_started_at);

-- "This wasn't me" for passkeys: each link also keeps the user's passkeys as they were before
-- the change (rows of `passkeys`, as JSON), which the undo puts back. Adding a column with a
-- constant default rewrites nothing; the constraint is replaced under the same short lock.
set local lock_timeout = '5s';
alter table security_undo_tokens
    add column passkeys jsonb not null default '[]',
    drop constraint security_undo_tokens_change_known,
    add constraint security_undo_tokens_change_known check (
        change in ('factor_added', 'factor_removed', 'recovery_codes_renewed', 'passkey_added', 'passkey_removed')
    );
