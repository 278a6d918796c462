-- Mail an anonymous request can make the service send (a signup's verification, a forgotten
-- password's reset link), counted per source address (an IPv4 address, an IPv6 /64) in windows
-- of an hour, so one client cannot spend the hourly budget on many addresses.
create table mail_sources (
    source text not null,
    window_started_at timestamptz not null,
    window_count integer not null,
    constraint mail_sources_pkey primary key (source),
    constraint mail_sources_window_count_positive check (window_count > 0)
);

-- The scheduled purge finds ended windows by this index.
create index mail_sources_window_started_at_idx on mail_sources (window_started_at);
