-- How each session was proven: its authenticator assurance level ('aal1' or 'aal2'), the
-- methods (RFC 8176 `amr` values) and when its user last signed in or stepped up. Sessions made
-- before this migration were proven by a password, at a time not recorded (null: no step-up of
-- theirs counts as recent). Constant defaults and a nullable column: no table rewrite and no
-- scan at any size; the lock waits at most five seconds for the sessions in flight, else the
-- migration fails and is retried.
set local lock_timeout = '5s';
alter table sessions
    add column aal text not null default 'aal1',
    add column amr text[] not null default '{pwd}',
    add column authenticated_at timestamptz;
alter table sessions alter column authenticated_at set default now();
