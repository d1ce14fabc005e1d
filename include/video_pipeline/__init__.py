"""Airflow-free domain package of the approval-gated video pipeline."""
