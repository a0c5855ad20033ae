"""The one pipeline config file, validated at load: one module per section, the whole file
(:class:`PipelineConfig`, :func:`load_config`) in :mod:`dropoutnet.config.pipeline`.

Import what you need from here; the sections' modules are where each setting is explained.
"""

from dropoutnet.config.base import ConfigError, format_errors, served_name
from dropoutnet.config.cold_start_recall import ColdStartRecall, LabelConfig
from dropoutnet.config.evaluation import EvaluationConfig, GateConfig, OracleConfig
from dropoutnet.config.features import GROUPS, KINDS, FeatureSpec, PreferenceSpec
from dropoutnet.config.model import LossConfig, ModelConfig
from dropoutnet.config.pipeline import PipelineConfig, default_config_path, factor_dim, load_config
from dropoutnet.config.base import RAW_TABLES
from dropoutnet.config.raw import REQUIRED_ROLES, RawConfig, RawTable
from dropoutnet.config.retention import RetentionConfig
from dropoutnet.config.retrieval import HnswConfig, RecallApiConfig, RetrievalConfig, memory_kb
from dropoutnet.config.runs import RunsConfig
from dropoutnet.config.samples import SampledNegativesConfig, SamplesConfig
from dropoutnet.config.serving import ServingConfig
from dropoutnet.config.storage import StorageConfig
from dropoutnet.config.stream import StreamConfig
from dropoutnet.config.training import PS_UNSUPPORTED, ClusterConfig, TrainingConfig
