-- Security events: what happened to an account, written by the statement that made it happen
-- (a sign-in, a failed one, a reuse, a reset, ...), for the user's own view, the operator's and
-- EventBridge. Append-only for the application: the grants leave its role insert and select
-- (`ops::migration::grants`), and the retention purge runs through `purge_security_events`, a
-- function of the owner's. `user_id` has no foreign key: an account's deletion is itself an
-- event, and its record outlives it until the retention ends.
create table security_events (
    id uuid not null,
    user_id uuid not null,
    session_id uuid,
    type text not null,
    at timestamptz not null default now(),
    ip inet,
    user_agent text,
    detail jsonb not null default '{}',
    constraint security_events_pkey primary key (id),
    constraint security_events_type_shape check (type ~ '^[a-z][a-z0-9_]{0,63}$')
);

-- A user's events newest first, by keyset (`at`, then `id`); the purge's oldest first.
create index security_events_user_id_at_idx on security_events (user_id, at desc, id desc);
create index security_events_at_idx on security_events (at);

-- Deletes up to `batch` events older than `retention`, and returns how many. Runs with its
-- owner's rights (the migrating role), so that the application's role, which may not delete an
-- event, can run the retention without being able to delete any other.
create function purge_security_events(retention interval, batch integer) returns bigint
language sql security definer set search_path = pg_catalog, pg_temp
as $$
    with doomed as (
        select e.id from public.security_events as e
        where e.at < now() - retention
        order by e.at
        limit batch
        for update skip locked
    ), deleted as (
        delete from public.security_events as e using doomed where e.id = doomed.id returning 1
    )
    select count(*) from deleted
$$;
