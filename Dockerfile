# The pipeline's Airflow image: the official image plus the runtime lock and our packages. Only the runtime
# lock (requirements.txt): test, lint and benchmark tools are in requirements-dev.txt, never in the image.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/video-pipeline/requirements.txt
RUN pip install --no-cache-dir -r /opt/video-pipeline/requirements.txt
# dags/, plugins/ and include/ are mounted by docker-compose; the editable install points at the mount.
COPY --chown=airflow:root pyproject.toml /opt/airflow/pyproject.toml
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root plugins /opt/airflow/plugins
RUN pip install --no-cache-dir --no-deps -e /opt/airflow
