"""The workshop, not the product: an embedded multi-process Airflow (``local``), fake provider servers that speak
the real APIs over HTTP (``fake_runway``, ``fake_fal`` on ``fake_http``), a moto S3 server and the Celery cluster
checks. Shared by ``make demo``, the tests and the benches; installed by ``make install`` from ``dev/`` and never
by the Docker image (which installs only the runtime lock and the product's packages)."""
