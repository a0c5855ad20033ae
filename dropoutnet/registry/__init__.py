"""The model registry: the one owner of a model's state in the database, one module per record.

* :mod:`.runs`: **training runs** (one per train task: its pipeline run, config hash, warm
  start, status and what publish decided) and **the parts of a version** waiting to be
  published (the run that wrote its user embeddings, item embeddings and metrics);
* :mod:`.versions`: **published versions** and **the active version**, the one recall, deploy
  and the gate read;
* :mod:`.history`: **the activation history**, every change of the active version with who
  made it and why (append-only, written by a trigger);
* :mod:`.experiments`: **A/B experiments**, a challenger version served to a share of users
  beside the active one, and which arm a user is in;
* :mod:`.lock`: **the run lock**, one pipeline run per model at a time, whatever starts it;
* :mod:`.artifacts`: the runs' and versions' files on disk, under the models root.

The rules it enforces live with the steps that act (publish, train, rollback); the facts they
decide on come from here.  This face hands the modules' names on: ``registry.active(cur, cfg)``.
"""

from dropoutnet.registry.experiments import (Experiment, ExperimentError, list_experiments,
                                             serving_state, start_experiment,
                                             stop_experiment)
from dropoutnet.registry.history import Change, activate, activations, cli_actor
from dropoutnet.registry.lock import acquire, cli_pipeline_run, holding, release
from dropoutnet.registry.runs import (LEGACY_RUN, PARTS, WarmStart, current_run, finish_run,
                                      parts, record_decision, record_part, run_paths, runs,
                                      start_run, warm_start_source)
from dropoutnet.registry.tables import config_hash, ensure_tables
from dropoutnet.registry.versions import (ActiveVersion, active, active_version, read_metrics,
                                          record_version, version_metrics, versions)
