-- Security events out to EventBridge, through a transactional outbox: every event inserted into
-- `security_events` gets a row here from a trigger, inside the inserting statement, so an event
-- and its place in the queue are written together or not at all, whichever statement writes
-- the event. The events-out function drains the queue (`events_out::store`): it locks due rows
-- (`for update skip locked`), sends them, deletes those EventBridge took, and puts the others off
-- (`attempts`, `next_attempt_at`, `last_error`). The event itself stays in `security_events`; a
-- row here is deleted with it (the retention purge). With events out turned off, the migration
-- disables the trigger (`ops::migration`), and nothing is queued.
create table security_event_outbox (
    event_id uuid not null,
    -- When the event was queued: the backlog's age (the alarm's metric) is now() - min(queued_at).
    queued_at timestamptz not null default now(),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    constraint security_event_outbox_pkey primary key (event_id),
    constraint security_event_outbox_event_id_fkey foreign key (event_id)
        references security_events (id) on delete cascade,
    constraint security_event_outbox_attempts_check check (attempts >= 0)
);

-- The drain's order: due rows, the earliest due first (a fresh row is due when it is queued).
create index security_event_outbox_next_attempt_at_idx on security_event_outbox (next_attempt_at);

-- Queues the new event. Runs with its owner's rights (the migrating role), so the application's
-- role, which writes events, need not be able to write the queue: it may read, put off and
-- delete rows (the drain), never add one (`ops::migration::grants`).
create function queue_security_event() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp
as $$
begin
    insert into public.security_event_outbox (event_id) values (new.id);
    return null;
end
$$;

create trigger security_events_outbox
    after insert on security_events
    for each row execute function queue_security_event();
