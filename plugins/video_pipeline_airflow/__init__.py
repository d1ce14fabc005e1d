"""Airflow adapters for the video pipeline: operators, triggers, hooks."""
