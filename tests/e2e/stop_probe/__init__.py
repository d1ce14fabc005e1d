"""A probe for what Airflow does when a person stops work: a DAG whose deferrable task waits forever and whose
other task runs forever on a worker, a trigger and a listener that write what fired to a file, and a stop
handler. Used by ``tests/e2e/test_stop_actions.py``; the file is named by ``STOP_PROBE_LOG``."""
