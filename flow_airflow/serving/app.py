"""A model endpoint: the user's predict function behind cnvrg's REST API, a Flask app for gunicorn.

Self-contained on purpose: it imports only the standard library and Flask (never flow_airflow), so
the file can be bind-mounted into any image that has python3, Flask and gunicorn, and run as
``python3 -m gunicorn --chdir <project_dir> --pythonpath <this folder> app:application``.

Configuration: the JSON file named by ``CNVRG_ENDPOINT_CONFIG`` (what
``flow_airflow.serving.command.EndpointConfig`` writes), with ``title``, ``version``,
``project_dir``, ``file_name``, ``function_name``, ``prep_file``, ``prep_function``,
``accept_files``, ``flask_config``, ``open``, ``input_example``. The API key comes from
``CNVRG_ENDPOINT_API_KEY`` only (never from the file); an ``open`` endpoint needs none.

HTTP (cnvrg's endpoint format; README "Serving a model endpoint"):

- ``POST /api/v1/endpoints/<title>`` with header ``Cnvrg-Api-Key: <key>`` and body
  ``{"input_params": <any JSON>}`` answers ``{"prediction": <what predict returned>}``. A list is
  spread over the function's arguments (cnvrg: "if your function accepts more than 1 parameter,
  send a list"; a function taking one list gets ``[[...]]``); anything else is its one argument.
  With ``accept_files``, ``input_params`` is a base64-encoded file (or the request is a multipart
  upload, field ``file``): the function gets the path of the decoded file.
  With a prep function, it gets the input as above and predict gets what it returned.
- ``GET /health``: 200 ``{"status": "ok", "title", "version"}`` once the predict module imported
  cleanly, else 503 ``{"status": "error", "error": reason}`` (readiness).
- ``GET /stats``: ``{"requests", "errors", "client_errors", "started", "metrics"}`` for this worker process
  (gunicorn may run several): prediction requests answered, of which 5xx and 4xx; ``metrics``: what the
  predict function logged with the stand-in SDK's ``Endpoint().log_metric`` (name -> count, last, points).

Errors are JSON ``{"error": message}``: 400 for a bad body, 401 for a wrong or missing key, 404
for another title, 413 for a body over ``MAX_CONTENT_LENGTH`` (64 MiB unless ``flask_config`` says),
500 with the exception's message when predict raises (the traceback goes to stderr; the server
keeps serving), 503 while the module failed to import, 504 when the prediction takes longer than the
config's ``timeout`` seconds: the hanging call cannot be ended inside the process, so under gunicorn
the worker then stops gracefully (SIGTERM to itself, after the 504 is sent: the requests it holds
finish) and gunicorn starts a fresh one; the hanging thread ends with the old worker. Each request
logs one line to stdout: method, path, status, milliseconds (never the key nor the body).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import importlib.util
import inspect
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.utils import secure_filename

CONFIG_ENV = "CNVRG_ENDPOINT_CONFIG"
KEY_ENV = "CNVRG_ENDPOINT_API_KEY"
KEY_HEADER = "Cnvrg-Api-Key"  # cnvrg's header (help.cnvrg.io "Publish your model")
ROUTE = "/api/v1/endpoints/<title>"
MAX_BODY = 64 * 1024 * 1024


class RequestRefused(Exception):
    """A request the endpoint refuses: answered ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _JSON(DefaultJSONProvider):
    """Flask's JSON, plus array-likes (numpy arrays and scalars) through their ``tolist()``."""

    @staticmethod
    def default(o: Any) -> Any:
        if callable(getattr(o, "tolist", None)):
            return o.tolist()
        return DefaultJSONProvider.default(o)


class _Stats:
    """Prediction requests answered by this process, thread-safe (gunicorn's threads share it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = self.errors = self.client_errors = 0
        self.started = datetime.now(timezone.utc)  # noqa: UP017 (datetime.UTC is 3.11+; images may have older Pythons).isoformat(timespec="seconds")

    def count(self, status: int) -> None:
        with self.lock:
            self.requests += 1
            self.errors += status >= 500
            self.client_errors += 400 <= status < 500

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "errors": self.errors, "client_errors": self.client_errors,
                    "started": self.started, "metrics": _sdk_metrics()}


def _sdk_metrics() -> dict[str, Any]:
    """What the predict function logged with the stand-in SDK's ``Endpoint().log_metric(name, y, x)`` in this
    process: name -> ``{"count", "last", "points": [[x, y], ...]}`` (the last 100); empty when it never did."""
    flow = sys.modules.get("cnvrg._flow")
    metrics = getattr(flow, "ENDPOINT_METRICS", None)
    if not isinstance(metrics, dict):
        return {}
    return {str(k): {"count": v.get("count", 0), "last": v.get("last"), "points": list(v.get("points", []))}
            for k, v in list(metrics.items()) if isinstance(v, dict)}


def _load_function(project_dir: Path, file_name: str, function_name: str, modules: dict[Path, Any]) -> Any:
    """``function_name`` of ``<project_dir>/<file_name>``; ``modules``: the files imported so far (a file
    holding both the prep and the predict function runs once)."""
    path = (project_dir / file_name).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{file_name}: no such file in {project_dir}")
    if path not in modules:
        # imported as ``predict`` for ``predict.py`` (what its pickles may name), unless that name is taken
        # (``app.py`` is this file's, ``json.py`` the standard library's)
        name = path.stem if path.stem not in sys.modules else f"_endpoint_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{file_name} cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules[path] = module
    function = getattr(modules[path], function_name, None)
    if not callable(function):
        raise AttributeError(f"{file_name} has no function '{function_name}'")
    return function


def _load(config: dict[str, Any]) -> tuple[Any, Any, str | None]:
    """(prep function or None, predict function, None) or (None, None, why the module cannot be used)."""
    project_dir = Path(config.get("project_dir") or ".").resolve()
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    try:
        prep, modules = None, {}
        if config.get("prep_file") and config.get("prep_function"):
            prep = _load_function(project_dir, config["prep_file"], config["prep_function"], modules)
        return prep, _load_function(project_dir, config["file_name"], config["function_name"], modules), None
    except BaseException as e:  # SystemExit from a module too: the endpoint answers 503 saying why
        if isinstance(e, KeyboardInterrupt):
            raise
        traceback.print_exc()
        return None, None, f"{type(e).__name__}: {e}"


def _call(function: Any, value: Any) -> Any:
    """``function(*value)`` for a list (cnvrg's rule), else ``function(value)``; 400 when it does not fit."""
    args = list(value) if isinstance(value, list) else [value]
    try:
        inspect.signature(function).bind(*args)
    except TypeError as e:
        shown = f"a list of {len(args)}, spread over the arguments" if isinstance(value, list) else "one argument"
        raise RequestRefused(400, f"input_params ({shown}) does not fit {function.__name__}"
                                 f"{inspect.signature(function)}: {e}"
                                 + ("; to pass one list, send [[...]]" if isinstance(value, list) else "")) from e
    except ValueError:
        pass  # no signature to read (a builtin): call it and let it say
    return function(*args)


def _file_input(request: flask.Request, folder: str) -> str:
    """The uploaded file of an ``accept_files`` endpoint, decoded into ``folder``: its path."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file") or next(iter(request.files.values()), None)
        if upload is None:
            raise RequestRefused(400, "a multipart request carries the file in the field 'file'")
        path = os.path.join(folder, secure_filename(upload.filename or "") or "upload")
        upload.save(path)
        return path
    encoded = _input_params(request)
    if not isinstance(encoded, str):
        raise RequestRefused(400, "this endpoint accepts files: input_params is one base64-encoded file "
                                 "(or send a multipart upload, field 'file')")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestRefused(400, f"input_params is not base64: {e}") from e
    path = os.path.join(folder, "input")
    Path(path).write_bytes(content)
    return path


def _input_params(request: flask.Request) -> Any:
    """``input_params`` of the JSON body (whatever the content type says); 400 when there is none."""
    if request.mimetype == "multipart/form-data":
        raise RequestRefused(400, "this endpoint does not accept files: send JSON {\"input_params\": ...}")
    try:
        body = json.loads(request.get_data(cache=True, parse_form_data=False) or b"null")
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than Python's JSON reads
        raise RequestRefused(400, f"the body is not JSON: {type(e).__name__}: {e}") from e
    if not isinstance(body, dict) or "input_params" not in body:
        raise RequestRefused(400, "the body must be a JSON object with \"input_params\" (cnvrg's request format)")
    return body["input_params"]


def _authorized(request: flask.Request, key: str | None) -> bool:
    given = request.headers.get(KEY_HEADER, "")
    return key is None or hmac.compare_digest(given.encode(), key.encode())


def create_app(config: dict[str, Any], *, api_key: str | None = None) -> flask.Flask:
    """The endpoint's Flask app for ``config`` (the keys: module docstring).

    ``api_key``: the key requests must carry (default: env ``CNVRG_ENDPOINT_API_KEY``).
    :raises ValueError: a key is missing from ``config``, or no API key for an endpoint that is not ``open``.
    """
    missing = [k for k in ("title", "version", "file_name", "function_name") if not config.get(k)]
    if missing:
        raise ValueError(f"endpoint config: missing {', '.join(missing)}")
    key = None if config.get("open") else (api_key or os.environ.get(KEY_ENV) or None)
    if not config.get("open") and not key:
        raise ValueError(f"endpoint '{config['title']}' is not open and has no API key (set {KEY_ENV})")
    app = flask.Flask(__name__)
    app.json = _JSON(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config.update(config.get("flask_config") or {})
    endpoint = _Endpoint(config, key)
    app.before_request(_start)
    app.after_request(endpoint.log)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RequestRefused, _refused)
    app.add_url_rule("/health", view_func=endpoint.health, methods=["GET"])
    app.add_url_rule("/stats", view_func=endpoint.statistics, methods=["GET"])
    app.add_url_rule(ROUTE, view_func=endpoint.query, methods=["POST"])
    return app


class _Endpoint:
    """One endpoint's state (its functions, its key, its counts) and its views."""

    def __init__(self, config: dict[str, Any], key: str | None) -> None:
        self.config, self.key = config, key
        self.title, self.version = str(config["title"]), str(config["version"])
        self.prep, self.predict, self.broken = _load(config)
        self.stats = _Stats()

    def log(self, response: flask.Response) -> flask.Response:
        """One line per request to stdout (method, path, status, milliseconds); predictions counted."""
        request = flask.request
        if request.url_rule is not None and request.url_rule.rule == ROUTE:
            self.stats.count(response.status_code)
        ms = (time.monotonic() - flask.g.get("started", time.monotonic())) * 1000
        print(f"{request.method} {request.path} {response.status_code} {ms:.0f}ms", flush=True)
        return response

    def health(self) -> tuple[flask.Response, int]:
        if self.broken:
            return flask.jsonify(status="error", error=self.broken, title=self.title, version=self.version), 503
        return flask.jsonify(status="ok", title=self.title, version=self.version), 200

    def statistics(self) -> flask.Response:
        return flask.jsonify(self.stats.as_dict())

    def query(self, title: str) -> tuple[flask.Response, int]:
        """``POST /api/v1/endpoints/<title>``: ``{"prediction": ...}`` or ``{"error": ...}``."""
        if title != self.title:
            raise RequestRefused(404, f"no endpoint '{title}' here (this is '{self.title}')")
        if not _authorized(flask.request, self.key):
            raise RequestRefused(401, f"a valid API key is needed in the {KEY_HEADER} header")
        if self.broken:
            raise RequestRefused(503, f"the endpoint is not ready: {self.broken}")
        timeout = self.config.get("timeout")
        if not self.config.get("accept_files"):
            return _bounded(self.prep, self.predict, _input_params(flask.request), timeout)
        with tempfile.TemporaryDirectory(prefix="endpoint-upload-") as folder:
            return _bounded(self.prep, self.predict, _file_input(flask.request, folder), timeout)


def _start() -> None:
    flask.g.started = time.monotonic()


def _http_error(e: HTTPException) -> tuple[flask.Response, int]:
    return flask.jsonify(error=f"{e.name}: {e.description}"), e.code or 500


def _refused(e: RequestRefused) -> tuple[flask.Response, int]:
    return flask.jsonify(error=str(e)), e.status


def _predict(prep: Any, predict: Any, value: Any) -> tuple[flask.Response, int]:
    """``{"prediction": ...}`` (200), or 500 with the exception's message (its traceback to stderr)."""
    try:
        result = predict(_call(prep, value)) if prep is not None else _call(predict, value)
        return flask.jsonify(prediction=result), 200
    except RequestRefused:
        raise
    except Exception as e:
        traceback.print_exc()
        return flask.jsonify(error=f"{type(e).__name__}: {e}"), 500


def _bounded(prep: Any, predict: Any, value: Any, timeout: float | None) -> tuple[flask.Response, int]:
    """:func:`_predict` within ``timeout`` seconds (None: unbounded), else 504 and this worker replaced."""
    if timeout is None:
        return _predict(prep, predict, value)
    done: list[tuple[flask.Response, int] | BaseException] = []
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        with app.app_context():
            try:
                done.append(_predict(prep, predict, value))
            except BaseException as e:  # RequestRefused (400): raised again in the request's thread
                done.append(e)

    worker = threading.Thread(target=run, name="predict", daemon=True)
    worker.start()
    worker.join(timeout)
    if not done:
        print(f"the prediction took longer than {timeout:g} s: answered 504, this worker is replaced",
              file=sys.stderr, flush=True)
        response = flask.jsonify(error=f"the prediction took longer than {timeout:g} s")
        if flask.request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
            response.call_on_close(_replace_worker)
        return response, 504
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]


def _replace_worker() -> None:
    """Stop this gunicorn worker gracefully (its master starts another): a prediction in it hangs."""
    os.kill(os.getpid(), signal.SIGTERM)


def from_environment() -> flask.Flask:
    """The app of the JSON file named by ``CNVRG_ENDPOINT_CONFIG`` (gunicorn's ``app:application``).

    :raises RuntimeError: the variable is unset or the file unreadable.
    """
    name = os.environ.get(CONFIG_ENV)
    if not name:
        raise RuntimeError(f"{CONFIG_ENV} is not set: it names the endpoint's JSON configuration")
    try:
        config = json.loads(Path(name).read_text())
    except (OSError, ValueError) as e:
        raise RuntimeError(f"{CONFIG_ENV}={name}: {e}") from e
    return create_app(config)


_application: flask.Flask | None = None
_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``application``: built on first use (gunicorn's lookup), once per process."""
    global _application
    if name != "application":
        raise AttributeError(name)
    with _lock:
        if _application is None:
            _application = from_environment()
    return _application
