-- The admin API (issue 25): an operator's hold on an account. A disabled user signs in nowhere
-- and refreshes nothing until enabled (null: not disabled). A nullable column without a default
-- is a catalog change, instant on a table of any size.
alter table users add column disabled_at timestamptz;
