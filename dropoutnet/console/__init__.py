"""The DropoutNet console: what the Airflow UI shows of the pipeline (``plugins/``).

One module per view, each a plain function of a cursor and the config that returns JSON-able
data (testable without Airflow): :mod:`.versions` (the published versions, one version, the
overview), :mod:`.quality` (recall across bizdates), :mod:`.compare` (two versions side by
side), :mod:`.playground` (what a user is recommended), :mod:`.health` (the real-time path).
:mod:`.app` serves them as pages and a JSON API behind the authentication the plugin hands
it; :mod:`.charts` draws the pages' charts as SVG, so the pages load nothing from elsewhere.
"""
