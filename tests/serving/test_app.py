"""The serving app (``flow_airflow/serving/app.py``): served by real gunicorn processes, and through
Flask's test client for the finer cases.

The example flows' predict functions answer what the issue asks: ``data_and_deploy`` the nearest
species to ``{"sepal_length": 5.0, "sepal_width": 3.4}`` (setosa: its mean (4.96, 3.44) is 0.06
away, versicolor's (5.87, 2.71) 1.1), ``realworld/deploy_webservice`` ``positive`` for "great food".
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import io
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_airflow.serving.command import EndpointConfig
from flow_airflow.spec.models import DeployTask
from tests.serving.conftest import APP_DIR, FLOWS, KEY


def _load_app_file() -> Any:
    """app.py loaded by path, as gunicorn loads it (never through flow_airflow)."""
    spec = importlib.util.spec_from_file_location("flow_airflow_serving_app_file", APP_DIR / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serving_app = _load_app_file()


def config(project: Path, **keys: Any) -> EndpointConfig:
    return EndpointConfig(**{"title": "ep", "version": "1", "project_dir": str(project), "file_name": "predict.py",
                             "function_name": "predict", **keys})


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


# --- through gunicorn -------------------------------------------------------------------------------------------


def test_iris_endpoint_answers_the_nearest_species(serve, iris_project: Path) -> None:
    endpoint = serve(config(iris_project, title="iris-classifier"),
                     env={"INPUT_TRAIN": str(iris_project / "input" / "train")})
    assert endpoint.predict({"sepal_length": 5.0, "sepal_width": 3.4}) == (200, {"prediction": "setosa"})
    assert endpoint.predict({"sepal_length": 6.7, "sepal_width": 3.0}) == (200, {"prediction": "virginica"})
    assert endpoint.request("GET", "/health") == (200, {"status": "ok", "title": "iris-classifier", "version": "1"})


def test_blueprint_sentiment_endpoint_answers_positive(serve, tmp_path: Path) -> None:
    project = tmp_path / "sentiment"
    shutil.copytree(FLOWS / "realworld" / "deploy_webservice", project)
    endpoint = serve(config(project, title="sentiment"))
    assert endpoint.predict({"text": "great food"}) == (200, {"prediction": {"label": "positive"}})
    assert endpoint.predict({"text": "awful service"}) == (200, {"prediction": {"label": "negative"}})


def test_the_blueprint_input_example_answers(serve, tmp_path: Path) -> None:
    project = tmp_path / "sentiment"
    shutil.copytree(FLOWS / "realworld" / "deploy_webservice", project)
    flow = yaml.safe_load((project / "flow.yaml").read_text())
    task = DeployTask.model_validate(flow["tasks"][0])
    endpoint = serve(EndpointConfig.for_task(task, title="sentiment", version="1", project_dir=str(project)))
    assert endpoint.predict(task.input_example) == (200, {"prediction": {"label": "neutral"}})


def test_a_deploy_tasks_prep_hook_and_config_vars_through_gunicorn(serve, tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py",
                    "import flask\ndef predict(words):\n"
                    "    return {'long': len(words) > flask.current_app.config['THRESHOLD']}\n")
    write(project, "prep.py", "def split(data):\n    return data['text'].split()\n")
    task = DeployTask.model_validate({"title": "Serve", "type": "deploy", "endpoint_title": "words",
                                      "file_name": "predict.py", "function_name": "predict", "prep_file": "prep.py",
                                      "prep_function": "split", "config_vars": ["THRESHOLD=2"]})
    endpoint = serve(EndpointConfig.for_task(task, title="words", version="1", project_dir=str(project)))
    assert endpoint.predict({"text": "one two three"}) == (200, {"prediction": {"long": True}})
    assert endpoint.predict({"text": "one two"}) == (200, {"prediction": {"long": False}})


def test_key_is_needed_unless_open_and_never_logged(serve, tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py", "def predict(x):\n    return x\n")
    endpoint = serve(config(project))
    assert endpoint.predict(1, key=None)[0] == 401
    status, answer = endpoint.predict(1, key="wrong")
    assert status == 401 and "Cnvrg-Api-Key" in answer["error"]
    assert endpoint.predict(1) == (200, {"prediction": 1})
    opened = serve(config(project, title="open-ep", open=True), env={"CNVRG_ENDPOINT_API_KEY": ""})
    assert opened.predict(2, key=None) == (200, {"prediction": 2})
    log = endpoint.log.read_text()
    assert KEY not in log and "wrong" not in log
    assert re.search(r"^POST /api/v1/endpoints/ep 401 \d+ms$", log, re.M), log
    assert re.search(r"^POST /api/v1/endpoints/ep 200 \d+ms$", log, re.M), log


def test_bad_requests_get_4xx_an_exception_500_and_the_server_keeps_serving(serve, tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py",
                    "def predict(data):\n    if data == 'boom':\n        raise ValueError('no model for boom')\n"
                    "    return {'echo': data}\n")
    endpoint = serve(config(project))
    headers = {"Cnvrg-Api-Key": KEY, "Content-Type": "application/json"}
    status, answer = endpoint.request("POST", "/api/v1/endpoints/ep", b'{"input_params": ', headers)
    assert status == 400 and answer["error"].startswith("the body is not JSON"), answer
    status, answer = endpoint.request("POST", "/api/v1/endpoints/ep", b'{"text": 1}', headers)
    assert status == 400 and "input_params" in answer["error"]
    assert endpoint.request("POST", "/api/v1/endpoints/other", b'{"input_params": 1}', headers)[0] == 404
    assert endpoint.request("GET", "/api/v1/endpoints/ep", None, headers)[0] == 405
    assert endpoint.predict("boom") == (500, {"error": "ValueError: no model for boom"})
    assert endpoint.predict("after") == (200, {"prediction": {"echo": "after"}})
    assert "Traceback" in endpoint.log.read_text()  # the server's log has the exception's traceback
    assert endpoint.request("GET", "/stats")[1] | {"started": None} == {
        "requests": 5, "errors": 1, "client_errors": 3, "started": None,  # the 405 is not the endpoint's route
        "metrics": {}}  # no Endpoint().log_metric in this predict function


def test_health_is_503_with_the_reason_when_the_module_does_not_import(serve, tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py", "import not_installed_anywhere\ndef predict(x):\n    return x\n")
    endpoint = serve(config(project))
    status, answer = endpoint.request("GET", "/health")
    assert status == 503 and answer["status"] == "error"
    assert "ModuleNotFoundError: No module named 'not_installed_anywhere'" in answer["error"]
    status, answer = endpoint.predict(1)
    assert status == 503 and "not_installed_anywhere" in answer["error"]


def test_a_file_upload_reaches_predict_as_a_path(serve, tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py",
                    "import os\ndef predict(path):\n"
                    "    return {'name': os.path.basename(path), 'text': open(path, 'rb').read().decode()}\n")
    endpoint = serve(config(project, accept_files=True))
    encoded = base64.b64encode(b"hello file").decode()
    assert endpoint.predict(encoded) == (200, {"prediction": {"name": "input", "text": "hello file"}})
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../notes.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nuploaded\r\n--{boundary}--\r\n").encode()
    status, answer = endpoint.request("POST", "/api/v1/endpoints/ep", body, {
        "Cnvrg-Api-Key": KEY, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert (status, answer) == (200, {"prediction": {"name": "notes.txt", "text": "uploaded"}})
    status, answer = endpoint.predict("not base64!")
    assert status == 400 and "base64" in answer["error"]


def test_gunicorn_config_reaches_gunicorn(serve, tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py", "import os\ndef predict(x):\n    return os.getpid()\n")
    endpoint = serve(config(project), gunicorn_config=[("workers", "2"), ("timeout", "30")])
    pids = {endpoint.predict(i)[1]["prediction"] for i in range(40)}
    assert endpoint.process.pid not in pids and 1 <= len(pids) <= 2
    booted = re.findall(r"Booting worker with pid: (\d+)", endpoint.log.read_text())
    assert len(booted) == 2, endpoint.log.read_text()


# --- Flask's test client: the finer cases ---------------------------------------------------------------------


def client(project: Path, **keys: Any) -> Any:
    return serving_app.create_app(config(project, **keys).model_dump(), api_key=KEY).test_client()


def post(test_client: Any, input_params: Any) -> tuple[int, Any]:
    answer = test_client.post("/api/v1/endpoints/ep", json={"input_params": input_params},
                              headers={"Cnvrg-Api-Key": KEY})
    return answer.status_code, answer.get_json()


def test_a_list_is_spread_over_the_arguments_as_cnvrg_does(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py",
                    "def predict(a, b):\n    return a - b\n\ndef one(values):\n    return sum(values)\n\n"
                    "def star(*input):\n    return list(input)\n")
    assert post(client(project), [5, 3]) == (200, {"prediction": 2})
    status, answer = post(client(project), 5)
    assert status == 400 and "predict(a, b)" in answer["error"]
    one = client(project, function_name="one")
    assert post(one, [[1, 2, 3]]) == (200, {"prediction": 6})
    status, answer = post(one, [1, 2, 3])
    assert status == 400 and "send [[...]]" in answer["error"]
    assert post(client(project, function_name="star"), "text") == (200, {"prediction": ["text"]})


def test_prep_function_runs_before_predict(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py", "def predict(words):\n    return {'count': len(words)}\n")
    write(project, "prep.py", "def prep(data):\n    return data['text'].split()\n")
    test_client = client(project, prep_file="prep.py", prep_function="prep")
    assert post(test_client, {"text": "great food here"}) == (200, {"prediction": {"count": 3}})


def test_prep_and_predict_in_one_file_load_it_once(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py",
                    "import pathlib\nwith open(pathlib.Path(__file__).with_name('loads'), 'a') as f:\n"
                    "    f.write('loaded\\n')\n\ndef prep(x):\n    return x + 1\n\n"
                    "def predict(x):\n    return x * 10\n")
    test_client = client(project, prep_file="predict.py", prep_function="prep")
    assert post(test_client, 1) == (200, {"prediction": 20})
    assert (project / "loads").read_text() == "loaded\n"


def test_flask_config_reaches_the_predict_function(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py",
                    "import flask\ndef predict(x):\n    return x > flask.current_app.config['THRESHOLD']\n")
    test_client = client(project, flask_config={"THRESHOLD": 0.5})
    assert post(test_client, 0.7) == (200, {"prediction": True})
    assert post(test_client, 0.2) == (200, {"prediction": False})


def test_an_answer_that_is_not_json_is_a_500_saying_so(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py",
                    "class Array:\n    def tolist(self):\n        return [1, 2]\n\n"
                    "def predict(x):\n    return Array() if x else object()\n")
    assert post(client(project), 1) == (200, {"prediction": [1, 2]})  # numpy-like: through tolist()
    status, answer = post(client(project), 0)
    assert status == 500 and "not JSON serializable" in answer["error"]


def test_a_file_endpoint_refuses_json_that_is_not_a_file_and_a_json_one_refuses_uploads(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py", "def predict(x):\n    return str(x)\n")
    status, answer = post(client(project, accept_files=True), {"a": 1})
    assert status == 400 and "base64" in answer["error"]
    upload = client(project).post("/api/v1/endpoints/ep", headers={"Cnvrg-Api-Key": KEY},
                                  data={"file": (io.BytesIO(b"x"), "x.txt")})
    assert upload.status_code == 400 and "does not accept files" in upload.get_json()["error"]


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py", "def predict(x):\n    return len(x)\n")
    test_client = client(project, flask_config={"MAX_CONTENT_LENGTH": 1000})
    answer = test_client.post("/api/v1/endpoints/ep", data=json.dumps({"input_params": "x" * 2000}),
                              headers={"Cnvrg-Api-Key": KEY})
    assert answer.status_code == 413 and "error" in answer.get_json()


def test_json_without_its_content_type_and_json_nested_too_deep(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "predict.py", "def predict(x):\n    return x\n")
    for accept_files, value in ((False, {"a": 1}), (True, base64.b64encode(b"abc").decode())):
        answer = client(project, accept_files=accept_files).post(  # curl -d without -H: a form's content type
            "/api/v1/endpoints/ep", data=json.dumps({"input_params": value}),
            headers={"Cnvrg-Api-Key": KEY, "Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200, answer.get_json()
    deep = client(project).post("/api/v1/endpoints/ep", data='{"input_params": ' + "[" * 100000 + "]" * 100000 + "}",
                                headers={"Cnvrg-Api-Key": KEY})
    assert deep.status_code == 400 and "RecursionError" in deep.get_json()["error"]


def test_a_predict_file_named_like_a_loaded_module_does_not_replace_it(tmp_path: Path) -> None:
    project = write(tmp_path / "p", "json.py", "def predict(x):\n    return 'mine'\n")
    assert post(client(project, file_name="json.py"), 1) == (200, {"prediction": "mine"})
    assert sys.modules["json"].__file__ != str(project / "json.py")


def test_an_endpoint_that_is_not_open_needs_a_key_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNVRG_ENDPOINT_API_KEY", raising=False)
    project = write(tmp_path / "p", "predict.py", "def predict(x):\n    return x\n")
    with pytest.raises(ValueError, match="not open and has no API key"):
        serving_app.create_app(config(project).model_dump())


def test_application_is_built_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = write(tmp_path / "p", "predict.py", "def predict(x):\n    return x * 2\n")
    (tmp_path / "c.json").write_text(config(project).model_dump_json())
    monkeypatch.setenv("CNVRG_ENDPOINT_CONFIG", str(tmp_path / "c.json"))
    monkeypatch.setenv("CNVRG_ENDPOINT_API_KEY", KEY)
    monkeypatch.setattr(serving_app, "_application", None)
    assert post(serving_app.application.test_client(), 21) == (200, {"prediction": 42})
    monkeypatch.setattr(serving_app, "_application", None)
    monkeypatch.delenv("CNVRG_ENDPOINT_CONFIG")
    with pytest.raises(RuntimeError, match="CNVRG_ENDPOINT_CONFIG is not set"):
        serving_app.application  # noqa: B018


def test_the_app_file_imports_only_the_standard_library_and_flask() -> None:
    tree = ast.parse((APP_DIR / "app.py").read_text(), feature_version=(3, 8))  # images may have older Pythons
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | {"flask", "werkzeug"}, imported
