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


RECIPES: dict[str, Recipe] = {
    # the experiments' image: Debian's python3 (3.11 on bookworm), venv and pip for requirements.txt;
    # Flask and gunicorn serve model endpoints (flow_airflow/serving/app.py is bind-mounted)
    "python": Recipe(
        packages=("python3", "python3-venv", "python3-pip", "ca-certificates", "python3-flask", "gunicorn"),
        env={"LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
        cmd=("python3",),
    ),
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
    if name not in RECIPES:
        raise ImageError(f"no image recipe '{name}' (known: {', '.join(RECIPES)})")
    return {"name": name, "builder": BUILDER_VERSION, "suite": debian_suite(),
            "arch": platform.machine(), **asdict(RECIPES[name])}


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
            build(name, tag, log)
    return tag


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
    try:
        for name in names:
            print(image_tag(name) if only_tag else ensure_image(name, log=lambda m: print(m, file=sys.stderr)))
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
