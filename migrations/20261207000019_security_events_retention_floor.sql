-- Security definer functions locked down. The retention of security events is 400 days at least, whoever runs the purge: the function
-- runs with its owner's rights, so a caller's retention or batch must not let the application's
-- role (which may not delete an event) empty the table through it. Only the application's role
-- may run it (the migrate function's grants), not every role as Postgres allows by default.
create or replace function purge_security_events(retention interval, batch integer) returns bigint
language sql security definer set search_path = pg_catalog, pg_temp
as $$
    with doomed as (
        select e.id from public.security_events as e
        where e.at < now() - greatest(retention, interval '400 days')
        order by e.at
        limit least(greatest(batch, 0), 10000)
        for update skip locked
    ), deleted as (
        delete from public.security_events as e using doomed where e.id = doomed.id returning 1
    )
    select count(*) from deleted
$$;

revoke execute on function purge_security_events(interval, integer) from public;

-- The outbox's trigger function runs as its owner too: only a trigger of its own table calls it
-- (a trigger fires without the privilege; creating one needs it), so nobody else may run it.
revoke execute on function queue_security_event() from public;
