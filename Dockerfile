# The image of docker-compose.yaml: Airflow 3.3 with flow-airflow (and its S3 extra) installed.
#   docker compose build                      # FROM the official image, as below
#   docker build --build-arg AIRFLOW_IMAGE=<another Airflow 3.3 image> -t flow-airflow .
# The base must be laid out like the official image (pip installs as user airflow, AIRFLOW_VERSION
# set); the tests build one from Debian's packages (docker/images/build.py "airflow").
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}
COPY --chown=airflow:0 pyproject.toml README.md /opt/flow-airflow/
COPY --chown=airflow:0 flow_airflow /opt/flow-airflow/flow_airflow
# pinning apache-airflow keeps the base's Airflow (docs "Extending the image")
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/flow-airflow[s3]"
