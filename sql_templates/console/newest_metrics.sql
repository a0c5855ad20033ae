-- The newest bizdate with stored metrics (null before the first evaluate): where the
-- quality chart ends by default.
select max(dt)
from {{ qualified(schema, 'metrics') }};
