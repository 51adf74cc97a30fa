"""The endpoint's front as a real uvicorn process before a real gunicorn replica: it checks the key before
it reads a body, caps the body, answers bad headers and slow replicas as JSON, and keeps ``/_front`` to
key holders."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from flow_airflow.endpoints.store import EndpointStore
from flow_airflow.serving.command import EndpointConfig, gunicorn_argv

APP_DIR = Path(__file__).parents[2] / "flow_airflow" / "serving"
KEY = "front-test-key-0123456789"
NAME = "echo"
PREDICT = f"/api/v1/endpoints/{NAME}"
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_answers(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: the process ended with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within 60 s:\n{log.read_text()[-3000:]}")


class Started:
    """Processes started by a test, stopped (SIGTERM, then SIGKILL) at its end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def run(self, argv: list[str], log: Path, env: dict[str, str], probe: str) -> subprocess.Popen:
        with log.open("ab") as out:
            process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.processes.append(process)
        wait_answers(probe, process, log)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def started() -> Iterator[Started]:
    processes = Started()
    yield processes
    processes.stop()


def replica(tmp_path: Path, started: Started, predict: str, gunicorn_config: dict | None = None,
            env: dict[str, str] | None = None, timeout: float | None = None) -> str:
    """A gunicorn replica serving ``predict`` (the source of predict.py), ``timeout`` its config's: its URL."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "predict.py").write_text(predict)
    config = EndpointConfig(title=NAME, version="1", project_dir=str(project), file_name="predict.py",
                            function_name="predict", timeout=timeout)
    (tmp_path / "config.json").write_text(config.model_dump_json())
    port = free_port()
    argv = gunicorn_argv(config, bind=f"127.0.0.1:{port}", app_dir=str(APP_DIR), python=sys.executable,
                         gunicorn_config=gunicorn_config or {})
    started.run(argv, tmp_path / "replica.log",
                {**os.environ, "CNVRG_ENDPOINT_CONFIG": str(tmp_path / "config.json"),
                 "CNVRG_ENDPOINT_API_KEY": KEY, "PYTHONUNBUFFERED": "1", **(env or {})},
                f"http://127.0.0.1:{port}/health")
    return f"http://127.0.0.1:{port}"


def front(tmp_path: Path, started: Started, urls: list[str], **limits: float) -> tuple[int, subprocess.Popen, Path]:
    """A front for endpoint ``echo`` forwarding to ``urls`` with ``KEY``: (port, process, log)."""
    store = EndpointStore(tmp_path / "endpoints")
    store.set_backends(NAME, 1, urls, key=KEY, **limits)  # type: ignore[arg-type]
    port = free_port()
    log = tmp_path / "front.log"
    process = started.run([sys.executable, "-m", "flow_airflow.endpoints.front", "--folder",
                           str(store.folder(NAME)), "--port", str(port)], log, dict(os.environ),
                          f"http://127.0.0.1:{port}/_front")
    return port, process, log


def raw(port: int, head: list[str], pieces: Iterable[bytes] = ()) -> tuple[int, dict]:
    """One HTTP/1.1 request written by hand (a Content-Length the body need not match), its body sent
    piece by piece while the answer is read (a front may answer before it has the body): (status, JSON)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(("\r\n".join([*head, "Host: 127.0.0.1", "Connection: close", "", ""])).encode("utf-8"))

        def send() -> None:
            with contextlib.suppress(OSError):  # the front answered and closed before it took the whole body
                for piece in pieces:
                    s.sendall(piece)
                    time.sleep(0.001)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                answer += chunk
    head_text, _, content = answer.partition(b"\r\n\r\n")
    status = int(head_text.split()[1])
    return status, json.loads(content)


def chunked(size: int, piece: int = 16 * 1024) -> Iterator[bytes]:
    """A chunked body of ``size`` bytes."""
    data = b"x" * piece
    for _ in range(size // piece):
        yield b"%x\r\n%s\r\n" % (piece, data)
    yield b"0\r\n\r\n"


def rss_mib(process: subprocess.Popen) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


ECHO = "def predict(data):\n    return len(str(data))\n"


def test_the_key_is_checked_before_the_body_is_read_and_the_body_is_capped(tmp_path: Path, started: Started) -> None:
    url = replica(tmp_path, started, ECHO)
    port, process, log = front(tmp_path, started, [url], max_body=256 * 1024)
    before = rss_mib(process)
    post = [f"POST {PREDICT} HTTP/1.1", "Content-Type: application/json", f"Content-Length: {150 * MIB}"]
    for _ in range(3):  # 150 MiB announced, none sent: without a key, 401 at once (the body is never awaited)
        began = time.monotonic()
        status, answer = raw(port, post)
        assert status == 401 and "API key" in answer["error"]
        assert time.monotonic() - began < 5
    # a chunked body without a length, 150 MiB sent as the answer is read: refused before it is read
    stream = [f"POST {PREDICT} HTTP/1.1", "Content-Type: application/json", "Transfer-Encoding: chunked"]
    assert raw(port, stream, chunked(150 * MIB))[0] == 401
    assert rss_mib(process) - before < 50, "the front kept what it was sent"
    # with the key: over the cap, 413 as JSON (by its length, and by what is read of a chunked body)
    status, answer = raw(port, [*post, f"Cnvrg-Api-Key: {KEY}"])
    assert status == 413 and "endpoint_max_body_mib" in answer["error"]
    status, answer = raw(port, [*stream, f"Cnvrg-Api-Key: {KEY}"], chunked(150 * MIB))
    assert status == 413 and "larger than 262144 bytes" in answer["error"]
    assert rss_mib(process) - before < 50
    # with the key, under the cap: forwarded and answered
    small = httpx.post(f"http://127.0.0.1:{port}{PREDICT}", json={"input_params": "a" * 1000},
                       headers={"Cnvrg-Api-Key": KEY}, timeout=30)
    assert small.status_code == 200 and small.json() == {"prediction": 1000}
    assert "Traceback" not in log.read_text()


def test_a_non_ascii_header_is_answered_as_json_with_no_traceback(tmp_path: Path, started: Started) -> None:
    url = replica(tmp_path, started, ECHO)
    port, _, log = front(tmp_path, started, [url])
    post = [f"POST {PREDICT} HTTP/1.1", "Content-Type: application/json", "X-Name: café ☕"]
    body = json.dumps({"input_params": "abc"}).encode()
    for _ in range(50):
        status, answer = raw(port, [*post, f"Content-Length: {len(body)}"], [body])
        assert status == 401 and "error" in answer
    status, answer = raw(port, [*post, f"Content-Length: {len(body)}", f"Cnvrg-Api-Key: {KEY}"], [body])
    assert (status, answer) == (200, {"prediction": 3})  # forwarded as the bytes it came as
    status, answer = raw(port, [*post, "Content-Length: 2", "Cnvrg-Api-Key: ké"], [b"{}"])
    assert status == 401
    text = log.read_text()
    assert "Traceback" not in text and len(text) < 5000, text[-3000:]


def test_the_front_lists_its_replicas_only_to_key_holders(tmp_path: Path, started: Started) -> None:
    url = replica(tmp_path, started, ECHO)
    port, _, _ = front(tmp_path, started, [url])
    anonymous = httpx.get(f"http://127.0.0.1:{port}/_front", timeout=10)
    assert anonymous.status_code == 401 and url not in anonymous.text
    wrong = httpx.get(f"http://127.0.0.1:{port}/_front", headers={"Cnvrg-Api-Key": "wrong"}, timeout=10)
    assert wrong.status_code == 401
    allowed = httpx.get(f"http://127.0.0.1:{port}/_front", headers={"Cnvrg-Api-Key": KEY}, timeout=10)
    assert allowed.status_code == 200 and allowed.json()["replicas"] == [url]
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)  # readiness: no key, no body
    assert health.status_code == 200 and health.json()["status"] == "ok"


HANGS = "import time\n\ndef predict(data):\n    if data == 'hang':\n        time.sleep(3600)\n    return data\n"


def test_a_hanging_prediction_is_answered_504_and_the_replica_recovers(tmp_path: Path, started: Started) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = replica(tmp_path, started, HANGS, timeout=2)  # gunicorn: 1 worker, 4 threads
    port, _, log = front(tmp_path, started, [url], timeout=12)
    predict = f"http://127.0.0.1:{port}{PREDICT}"

    def ask(value: str) -> httpx.Response:
        return httpx.post(predict, json={"input_params": value}, headers={"Cnvrg-Api-Key": KEY}, timeout=60)

    began = time.monotonic()
    with ThreadPoolExecutor(6) as pool:  # more hanging requests than the replica has threads
        hung = list(pool.map(ask, ["hang"] * 6))
    assert [a.status_code for a in hung] == [504] * 6, [a.text for a in hung]
    assert all("longer than 2 s" in a.json()["error"] for a in hung)
    assert time.monotonic() - began < 30
    deadline = time.monotonic() + 30  # the worker holding the hung calls is replaced: the replica answers again
    while (answer := ask("ok")).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    assert answer.json() == {"prediction": "ok"}
    assert [ask(f"x{i}").json() for i in range(5)] == [{"prediction": f"x{i}"} for i in range(5)]
    assert "Traceback" not in log.read_text()
    assert "answered 504, this worker is replaced" in (tmp_path / "replica.log").read_text()
