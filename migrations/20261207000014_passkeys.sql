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

-- A passkey registration between its begin and its finish: the state webauthn-rs needs to check
-- the authenticator's answer (the challenge among it), for five minutes, used once (`delete ...
-- returning`), by the session that began it (one at a time per session: a later begin replaces
-- it). Only the SHA-256 of its `challenge_id` is stored.
create table webauthn_challenges (
    challenge_hash bytea not null,
    user_id uuid not null,
    session_id uuid not null,
    state jsonb not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint webauthn_challenges_pkey primary key (challenge_hash),
    constraint webauthn_challenges_session_id_key unique (session_id),
    constraint webauthn_challenges_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint webauthn_challenges_challenge_hash_length check (octet_length(challenge_hash) = 32)
);

-- A reset, a password change, a factor's removal or the undo link void a user's registrations by
-- the one index; the scheduled purge finds expired ones by the other.
create index webauthn_challenges_user_id_idx on webauthn_challenges (user_id);
create index webauthn_challenges_expires_at_idx on webauthn_challenges (expires_at);

-- A sign-in (or step-up) ceremony is not stored when it begins: anyone may begin one, so its
-- state travels sealed (AES-GCM under the MFA key ring) in its `challenge_id`, with its expiry.
-- Its single use is recorded here when a passkey's answer to it verified: the SHA-256 of the
-- sealed ceremony, until the ceremony would have expired anyway.
create table webauthn_used_challenges (
    challenge_hash bytea not null,
    expires_at timestamptz not null,
    constraint webauthn_used_challenges_pkey primary key (challenge_hash),
    constraint webauthn_used_challenges_challenge_hash_length check (octet_length(challenge_hash) = 32)
);

create index webauthn_used_challenges_expires_at_idx on webauthn_used_challenges (expires_at);

-- "This wasn't me" for passkeys: each link also keeps the user's passkeys as they were before
-- the change (rows of `passkeys`, as JSON), which the undo puts back, and a passkey_added link
-- names the passkey it added (any undo takes back every passkey a live link names). Adding
-- columns with a constant default, or none, rewrites nothing; the constraint is replaced under
-- the same short lock.
set local lock_timeout = '5s';
alter table security_undo_tokens
    add column passkeys jsonb not null default '[]',
    add column passkey_id uuid,
    drop constraint security_undo_tokens_change_known,
    add constraint security_undo_tokens_change_known check (
        change in ('factor_added', 'factor_removed', 'recovery_codes_renewed', 'passkey_added', 'passkey_removed')
    );
