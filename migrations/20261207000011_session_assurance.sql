-- How each session was proven: its authenticator assurance level, the methods (RFC 8176 `amr`
-- values) and when its user last signed in or stepped up. A session made before this migration
-- was proven by a password, long enough ago that no step-up counts as recent. Constant defaults
-- first (no table rewrite at any size; the check reads the table once), then the default new
-- sessions take.
alter table sessions
    add column aal text not null default 'aal1',
    add column amr text[] not null default '{pwd}',
    add column authenticated_at timestamptz not null default '-infinity',
    add constraint sessions_aal_check check (aal in ('aal1', 'aal2'));
alter table sessions alter column authenticated_at set default now();
