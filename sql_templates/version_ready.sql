-- Whether a version has both embedding partitions (a version is only published whole).
select
    to_regclass(%(user_partition)s) is not null as users_ready,
    to_regclass(%(item_partition)s) is not null as items_ready;
