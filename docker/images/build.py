#!/usr/bin/env python3
"""Build the project's container images on this machine, cached by content: no registry needed.

No image registry can be reached here, so an image is a Debian root filesystem made with
``debootstrap --variant=minbase`` (the machine's own Debian suite, from the mirror apt already
uses) and loaded with ``docker import``. Its tag names the recipe's content,
``flow-airflow/<name>:<key>`` with ``key`` a hash of (suite, architecture, packages, environment,
command, BUILDER_VERSION): when the engine holds that tag, nothing is built. The recipe is also
written into the image, at ``/etc/flow-airflow-image.json``.

    python3 docker/images/build.py python        # prints the tag, building it if needed (about 2 min)
    python3 docker/images/build.py --tag python  # prints the tag only
    python3 docker/images/build.py postgres redis compose   # the compose stack's images (tests/compose)

``compose`` is the repository's Dockerfile built on the ``airflow`` image (``ensure_project_image``),
keyed by that base and the files the Dockerfile copies.

The compose stack's images are made the same way: ``postgres`` and ``redis`` from Debian's packages,
``airflow`` in two steps, a Debian root filesystem with Python 3.11 (``airflow-debian``) and on it a
``docker build --network host`` that pip-installs Airflow like the official image lays it out
(user ``airflow``, uid 50000, ``AIRFLOW_HOME=/opt/airflow``, an entrypoint that runs ``airflow <command>``),
with the CA bundle pip is configured with on this machine (``PIP_CERT`` or ``pip.conf``'s ``cert``).

Needs root, Debian's ``debootstrap`` and a Docker engine (``./dev test`` installs and starts them).
Standard library only: ``./dev`` and the test fixtures (tests/containers/conftest.py) both use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BUILDER_VERSION = 1  # bump when the way an image is made changes: every key changes with it
PREFIX = "flow-airflow"
LOCKS = Path(tempfile.gettempdir())


@dataclass(frozen=True)
class Recipe:
    """What goes into an image: Debian packages (with what they depend on), environment, command."""

    packages: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cmd: tuple[str, ...] = ("bash",)


# the postgres image's command: a cluster made at first start with the official image's variables
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB; PGPORT is the port, as for every PostgreSQL program)
POSTGRES_START = r"""set -e
mkdir -p "$PGDATA" /var/run/postgresql && chown postgres "$PGDATA" /var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}" >/tmp/pw && chown postgres /tmp/pw
    runuser -u postgres -- initdb -D "$PGDATA" -U "${POSTGRES_USER:=postgres}" --pwfile=/tmp/pw \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm /tmp/pw
    echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
    if [ "${POSTGRES_DB:=$POSTGRES_USER}" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\"" |
            runuser -u postgres -- postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi
exec runuser -u postgres -- postgres -D "$PGDATA" -c listen_addresses="${POSTGRES_LISTEN_ADDRESSES:-*}"
"""

# Airflow as the official image lays it out (docs "Extending the image": pip install as user airflow)
AIRFLOW_VERSION = "3.3.2"
AIRFLOW_DOCKERFILE = f"""FROM {{base}}
ENV AIRFLOW_VERSION={AIRFLOW_VERSION} AIRFLOW_HOME=/opt/airflow AIRFLOW_UID=50000 \\
    PATH=/home/airflow/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PIP_CERT=/etc/flow-airflow/pip-ca.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pip-ca.crt /etc/flow-airflow/pip-ca.crt
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \\
 && mkdir -p /opt/airflow/dags /opt/airflow/logs && chown -R airflow:0 /opt/airflow
USER airflow
WORKDIR /opt/airflow
RUN python3 -m venv /home/airflow/.local && pip install -q --upgrade pip setuptools wheel \\
 && pip install -q "apache-airflow[celery,postgres,redis,amazon,cncf-kubernetes,docker,standard]=={AIRFLOW_VERSION}" \\
      "apache-airflow-providers-amazon[s3fs]" "aiobotocore[boto3]" flask gunicorn
# Airflow's constraints (on GitHub, not reachable here) pin what its providers were tested with;
# celery 5.7 lacks celery.backends.database.retry, which the celery provider imports
RUN pip install -q "celery[redis]<5.7"
# the official image's entrypoint: `<command>` runs `airflow <command>` (`celery worker` too), a shell or
# Python runs as given
USER root
RUN printf '%s\\n' '#!/bin/bash' \\
      'case "${{1:-}}" in bash|sh|python|python3|airflow|pip|"") exec "${{@:-bash}}";; esac' \\
      'exec airflow "$@"' >/entrypoint && chmod 755 /entrypoint
USER airflow
ENTRYPOINT ["/entrypoint"]
CMD []
"""

RECIPES: dict[str, Recipe] = {
    # the experiments' image: Debian's python3 (3.11 on bookworm), venv and pip for requirements.txt;
    # Flask and gunicorn serve model endpoints (flow_airflow/serving/app.py is bind-mounted)
    "python": Recipe(
        packages=("python3", "python3-venv", "python3-pip", "ca-certificates", "python3-flask", "gunicorn"),
        env={"LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
        cmd=("python3",),
    ),
    # the compose stack (docker-compose.yaml, tests/compose): its database, broker and Airflow's base
    "postgres": Recipe(
        packages=("postgresql-15",),
        env={"LANG": "C.UTF-8", "PGDATA": "/var/lib/postgresql/data",
             "PATH": "/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        cmd=("bash", "-c", POSTGRES_START),
    ),
    "redis": Recipe(packages=("redis-server",), cmd=("redis-server", "--protected-mode", "no")),
    "airflow-debian": Recipe(
        packages=("python3", "python3-venv", "ca-certificates", "curl", "procps"),
        env={"LANG": "C.UTF-8"},
    ),
}


@dataclass(frozen=True)
class Layer:
    """An image made by ``docker build --network host`` on recipe ``base``'s image: a Dockerfile
    (``{base}`` is replaced by the base's tag) and files of its context, ``name -> host path``
    (their content is part of the key)."""

    base: str
    dockerfile: str
    files: dict[str, str] = field(default_factory=dict)


LAYERS: dict[str, Layer] = {
    "airflow": Layer(base="airflow-debian", dockerfile=AIRFLOW_DOCKERFILE, files={"pip-ca.crt": "<pip cert>"}),
}


class ImageError(RuntimeError):
    """An image could not be had; the message says why and what to do."""


def debian_suite() -> str:
    """The machine's Debian release name (``VERSION_CODENAME`` of /etc/os-release), e.g. ``bookworm``."""
    try:
        fields = dict(
            line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
        )
    except OSError as e:
        raise ImageError(f"cannot read /etc/os-release ({e}): images are built on Debian only") from e
    if fields.get("ID", "").strip('"') != "debian" or not fields.get("VERSION_CODENAME"):
        raise ImageError("images are built with debootstrap on Debian; this machine is not Debian")
    return fields["VERSION_CODENAME"].strip('"')


def apt_mirror(suite: str) -> str:
    """The Debian mirror apt uses for ``suite``: from /etc/apt/sources.list.d/*.sources or sources.list."""
    apt = Path("/etc/apt")
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            entry = {k.strip().lower(): v.split() for k, _, v in
                     (line.partition(":") for line in stanza.splitlines() if not line.startswith("#"))}
            if "deb" in entry.get("types", []) and suite in entry.get("suites", []) and entry.get("uris"):
                return entry["uris"][0]
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        lines = path.read_text().splitlines() if path.is_file() else []
        for words in (line.split() for line in lines):
            words = [w for w in words if not w.startswith("[")]  # [arch=...] options
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise ImageError(f"no Debian mirror for '{suite}' in /etc/apt/sources.list*")


def description(name: str) -> dict:
    """Everything the image's content depends on: the key is its hash."""
    if name in LAYERS:
        layer = LAYERS[name]
        files = {n: hashlib.sha256(Path(_host_path(h)).read_bytes()).hexdigest() for n, h in layer.files.items()}
        return {"name": name, "builder": BUILDER_VERSION, "base": image_tag(layer.base),
                "dockerfile": layer.dockerfile, "files": files}
    if name not in RECIPES:
        raise ImageError(f"no image recipe '{name}' (known: {', '.join([*RECIPES, *LAYERS])})")
    return {"name": name, "builder": BUILDER_VERSION, "suite": debian_suite(),
            "arch": platform.machine(), **asdict(RECIPES[name])}


def pip_cert() -> str:
    """The CA bundle pip uses on this machine: ``PIP_CERT``, else ``cert`` of pip's config files,
    else Debian's bundle (what ``pip config list`` shows)."""
    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    import configparser

    for path in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", Path.home() / ".config/pip/pip.conf",
                 Path.home() / ".pip/pip.conf"):
        config = configparser.ConfigParser()
        config.read(path)
        if config.get("global", "cert", fallback=None):
            return config.get("global", "cert")
    return "/etc/ssl/certs/ca-certificates.crt"


def _host_path(spec: str) -> str:
    return pip_cert() if spec == "<pip cert>" else spec


def image_tag(name: str) -> str:
    """``flow-airflow/<name>:<key>``: the tag the recipe's image has once built."""
    text = json.dumps(description(name), sort_keys=True)
    return f"{PREFIX}/{name}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def has_image(tag: str) -> bool:
    """Whether the engine holds ``tag``; ImageError when no engine answers."""
    try:
        done = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, text=True, timeout=60)
    except FileNotFoundError as e:
        raise ImageError("no docker command: './dev test' installs Debian's docker.io") from e
    if done.returncode != 0 and "No such image" not in done.stderr:
        raise ImageError(f"the Docker engine does not answer: {done.stderr.strip()} ('./dev test' starts it)")
    return done.returncode == 0


def ensure_image(name: str, log=print) -> str:
    """The tag of image ``name``, built first unless the engine has it (one build at a time per tag)."""
    tag = image_tag(name)
    if has_image(tag):
        return tag
    with open(LOCKS / f"{tag.replace('/', '-').replace(':', '-')}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then look again
        if not has_image(tag):
            if name in LAYERS:
                build_layer(name, ensure_image(LAYERS[name].base, log), tag, log)
            else:
                build(name, tag, log)
    return tag


def build_layer(name: str, base: str, tag: str, log=print) -> None:
    """``docker build --network host`` of layer ``name`` on image ``base``, tagged ``tag``."""
    layer, start = LAYERS[name], time.monotonic()
    log(f"building image {tag} on {base} (docker build; Airflow's pip install takes a few minutes)")
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-{name}-context-") as context:
        for file, spec in layer.files.items():
            shutil.copyfile(_host_path(spec), Path(context) / file)
        (Path(context) / "Dockerfile").write_text(layer.dockerfile.replace("{base}", base))
        _run(["docker", "build", "--network", "host", "--label", f"{PREFIX}.key={tag}", "-t", tag, context],
             what=f"docker build of {name}")
    log(f"built image {tag} in {time.monotonic() - start:.0f} s")


def build(name: str, tag: str, log=print) -> None:
    """debootstrap a root filesystem for ``name`` and ``docker import`` it as ``tag``."""
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise ImageError("building an image needs root and Debian's debootstrap ('./dev test' installs it)")
    recipe, about = RECIPES[name], description(name)
    suite = about["suite"]
    start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-{name}-rootfs-", dir="/var/tmp"))
    try:
        log(f"building image {tag}: debootstrap {suite} with {', '.join(recipe.packages)} (about 2 minutes)")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(recipe.packages)}",
              suite, str(root), apt_mirror(suite)], what="debootstrap")
        _slim(root)
        (root / "etc/flow-airflow-image.json").write_text(json.dumps(about, indent=1) + "\n")
        changes = [f"ENV {k}={v}" for k, v in recipe.env.items()] + [f"CMD {json.dumps(list(recipe.cmd))}"]
        with subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE) as tar:
            _run(["docker", "import", *(a for c in changes for a in ("--change", c)), "-", tag],
                 what="docker import", stdin=tar.stdout)
        if tar.returncode != 0:
            raise ImageError(f"tar of {root} failed with exit code {tar.returncode}")
    finally:
        _unmount(root)  # debootstrap mounts /proc and /sys inside; a failed one may leave them
        shutil.rmtree(root, ignore_errors=True)
    log(f"built image {tag} in {time.monotonic() - start:.0f} s")


# what the repository's Dockerfile copies (and .dockerignore lets through): the project image's content
PROJECT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")


def project_tag(base: str) -> str:
    """``flow-airflow/compose:<key>``: the repository's Dockerfile on image ``base``, keyed by the base
    and the content of the files it copies (flow_airflow/ without bytecode)."""
    digest = hashlib.sha256(f"{BUILDER_VERSION}\n{base}\n".encode())
    files = [PROJECT / f for f in PROJECT_FILES] + sorted(
        f for f in (PROJECT / "flow_airflow").rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    for path in files:
        digest.update(f"{path.relative_to(PROJECT)}\n".encode() + hashlib.sha256(path.read_bytes()).digest())
    return f"{PREFIX}/compose:{digest.hexdigest()[:12]}"


def ensure_project_image(base_name: str = "airflow", log=print) -> str:
    """The tag of the repository's Dockerfile built on image ``base_name`` (``--build-arg AIRFLOW_IMAGE``),
    built first unless the engine has it: what docker-compose.yaml runs in the tests."""
    base = ensure_image(base_name, log)
    tag = project_tag(base)
    if has_image(tag):
        return tag
    with open(LOCKS / f"{tag.replace('/', '-').replace(':', '-')}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not has_image(tag):
            start = time.monotonic()
            log(f"building image {tag}: the Dockerfile on {base}")
            _run(["docker", "build", "--network", "host", "--build-arg", f"AIRFLOW_IMAGE={base}", "-t", tag,
                  str(PROJECT)], what="docker build of the Dockerfile")
            log(f"built image {tag} in {time.monotonic() - start:.0f} s")
    return tag


def _slim(root: Path) -> None:
    """Drop what a container never reads: downloaded packages, package lists, documentation."""
    for folder in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                   "usr/share/info", "var/log"):
        for item in (root / folder).glob("*"):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            elif item.name != "lock":
                item.unlink()
    for folder in ("var/cache/apt/archives/partial", "var/lib/apt/lists/partial"):
        (root / folder).mkdir(exist_ok=True)  # apt-get inside the image expects them


def _unmount(root: Path) -> None:
    """Unmount whatever is mounted under ``root``, deepest first, before it is removed."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


def _run(argv: list[str], what: str, stdin=None) -> None:
    done = subprocess.run(argv, stdin=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise ImageError(f"{what} failed with exit code {done.returncode}:\n{tail}")


def main(argv: list[str]) -> int:
    only_tag = "--tag" in argv
    names = [a for a in argv if a != "--tag"] or ["python"]
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        for name in names:
            if name == "compose":  # the repository's Dockerfile on the "airflow" image
                print(project_tag(image_tag("airflow")) if only_tag else ensure_project_image("airflow", log))
            else:
                print(image_tag(name) if only_tag else ensure_image(name, log=log))
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
