-- The worker's publication: inserts and updates of the raw item tables (deletes and
-- truncates are not the worker's business: an item's vector outlives its row until the
-- daily run embeds the pool again).
create publication {{ publication | ident }}
for table {% for t in tables %}{{ qualified(t[0], t[1]) }}{{ ", " if not loop.last }}{% endfor %}
with (publish = 'insert, update');
