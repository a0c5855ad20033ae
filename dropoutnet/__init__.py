"""DropoutNet cold-start recall: a daily pipeline on Airflow 3, TensorFlow 2 and pgvector."""

__version__ = "0.1.0"
