-- One server setting of the embedded server (postgresql.auto.conf); the caller restarts the
-- server when the setting only takes effect at start.
alter system set {{ name | ident }} = %(value)s;
