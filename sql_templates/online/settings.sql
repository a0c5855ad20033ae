-- Settings of the online metrics' transaction.  Its statements are large joins on users and
-- responses, which hash and merge joins fit: a nested loop, chosen on a stale estimate (a
-- day's served log written minutes before, not yet analysed), compared every event with
-- every list and ran for minutes instead of seconds at 1M served items.  Their sorts fit in
-- memory at that size.
select
    set_config('enable_nestloop', 'off', true),
    set_config('work_mem', %(work_mem)s, true);
