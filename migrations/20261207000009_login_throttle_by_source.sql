-- The login throttle by source address as well as by email.
--
-- login_attempts' backoff is now kept per (email, source): the client address a login came
-- from (an IPv4 address, an IPv6 /64), '' when the front door gave none, `session:<id>` for a
-- signed-in user confirming their password. One client hammering an address then waits on its
-- own row, and the owner, from anywhere else, does not. The new column's default keeps the
-- statement to the catalog (no rewrite); the key's index is rebuilt, which on a table of
-- failures quiet for less than a day (the purge deletes the others) takes moments.
alter table login_attempts add column source text not null default '';
alter table login_attempts drop constraint login_attempts_pkey;
alter table login_attempts add constraint login_attempts_pkey primary key (email, source);

-- Failures counted in fixed windows across what the backoff above keys apart: per source address
-- across every email (`scope` 'source': one client trying a password against many addresses) and
-- per email across every address (`scope` 'email': a ceiling no single source reaches).
create table login_failure_windows (
    scope text not null,
    key text not null,
    window_started_at timestamptz not null,
    failed_count integer not null,
    constraint login_failure_windows_pkey primary key (scope, key),
    constraint login_failure_windows_scope_known check (scope in ('source', 'email')),
    constraint login_failure_windows_failed_count_not_negative check (failed_count >= 0)
);

-- The scheduled purge finds ended windows by this index.
create index login_failure_windows_window_started_at_idx on login_failure_windows (window_started_at);
