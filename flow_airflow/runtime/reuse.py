"""Reusing experiments: an experiment's key, and the index of the keys of experiments that succeeded.

An experiment's **key** is a digest of everything that decides its result (issue 28): the task's
command line as run (its script, then each param's words in order, tags of the tasks before it
filled in), its image and compute kind, the files it starts from (the project's or component's
files in its working directory, or its Git checkout; ``input/`` is not among them: the parents'
keys stand for it), the keys of the parent experiments on its route (a data task's parent: its
dataset's commit), and the project's environment variables. Two experiments with the same key are
the same experiment.

Reuse is asked for, never assumed: cnvrg runs every experiment, and scripts need not be
deterministic. Every experiment that succeeds is written into the index (so that a later run may
reuse it); a run that asks (``{"flow_airflow": {"reuse": true}}`` in its conf, ``flow-airflow run
--reuse``, ``[flow_airflow] reuse``) takes an experiment of the same key from it instead of
running the command. Only experiments that succeeded are ever written.

The index lives where the artifacts do, under ``<artifacts root>/.reuse/<key>.json``: written once per
key (a local file is linked into place, so two writers of one key keep the first; on object storage
the second writer of an equivalent entry finds it there and leaves it), read without locks. A
missing or damaged entry, or an end state that is no longer stored, means "run it" (logged),
never a failure or a wrong input; the experiment that ran then replaces an entry whose end state was gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow_airflow.common.records import Record, Status, status_of

INDEX = ".reuse"  # below the artifact store's root: never a DAG id (dag_id_for strips a leading dot)
VERSION = 1  # of what goes into a key: a change to it changes every key
CHUNK = 1 << 20


@dataclass(frozen=True)
class KeyParts:
    """What decides an experiment's result: what :func:`experiment_key` digests.

    :param script: the task's command as written (``python3 train.py``).
    :param words: each param's ``--key`` and value words, in the file's order, tags filled in.
    :param image: the image it runs in (``""`` on the local compute, which has none).
    :param kind: the compute kind (``local``, ``docker``, ``kubernetes``).
    :param files: the digest of the files it starts from (:func:`files_digest`).
    :param parents: ``[(title, [key of each experiment it follows])]``, in the relations' order.
    :param env: the project's environment variables.
    """

    script: str
    words: list[tuple[str, list[str]]]
    image: str
    kind: str
    files: str
    parents: list[tuple[str, list[str]]]
    env: Mapping[str, str]


def experiment_key(parts: KeyParts) -> str:
    """The key of an experiment: 64 hex digits of SHA-256 over ``parts`` as canonical JSON."""
    body = {"version": VERSION, "script": parts.script, "words": parts.words, "image": parts.image,
            "kind": parts.kind, "files": parts.files, "parents": parts.parents, "env": dict(sorted(parts.env.items()))}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def files_digest(root: Path, skip: Iterable[str]) -> str:
    """SHA-256 of the files below ``root`` (relative paths, kinds, contents, link targets), the top-level
    folders ``skip`` left out (``input``, the installed packages, datasets). Links are not followed."""
    from flow_airflow.runtime.workspace import _walk

    digest = hashlib.sha256()
    for rel, entry, info in _walk(root, root, frozenset(skip)):
        if entry.is_symlink():
            digest.update(f"link {rel} {os.readlink(entry.path)}\0".encode())
        elif entry.is_dir(follow_symlinks=False):
            digest.update(f"dir {rel}\0".encode())
        else:
            digest.update(f"file {rel} {info.st_size} {info.st_mode & 0o111 != 0}\0".encode())
            with open(entry.path, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
    return digest.hexdigest()


def parent_keys(parents: Mapping[str, list[Record]]) -> list[tuple[str, list[str]]] | None:
    """The keys of the parent experiments, per parent title; None when one has none (it cannot be reused
    from: an experiment before keys existed, a deploy task). A data task stands for its dataset's commit."""
    result = []
    for title, records in parents.items():
        keys = []
        for record in records:
            if record.get("key"):
                keys.append(str(record["key"]))
            elif isinstance(record.get("dataset"), Mapping) and record["dataset"].get("commit"):
                dataset = record["dataset"]
                keys.append(f"dataset {dataset.get('name')} {dataset['commit']}")
            else:
                return None
        result.append((title, keys))
    return result


@dataclass(frozen=True)
class Reused:
    """An entry of the index: where an experiment of a key ran, and its record."""

    key: str
    dag_id: str
    run_id: str
    task: str
    index: int
    when: str  # ISO 8601, UTC: when it ended
    record: Record

    def mention(self) -> str:
        """``<run> <task> #<i> (<when>)``, as the log line of a reused experiment names it."""
        return f"{self.run_id} {self.task} #{self.index} ({self.when})"

    def origin(self) -> dict[str, Any]:
        """What a reused experiment's record keeps of it (``reused``): dag_id, run_id, task, index, when."""
        return {"dag_id": self.dag_id, "run_id": self.run_id, "task": self.task, "index": self.index,
                "when": self.when}


class ReuseIndex:
    """The keys of experiments that succeeded, beside the artifacts (a local folder or object storage).

    :param root: the artifact store's root (:func:`flow_airflow.settings.artifacts_root`).
    :param log: where a damaged entry is reported.
    """

    def __init__(self, root: Path | str, log: logging.Logger):
        from flow_airflow.object_storage import is_url

        self.log = log
        self.remote = None
        if isinstance(root, str) and is_url(root):
            from flow_airflow.runtime.object_artifacts import ObjectArtifacts

            self.remote = ObjectArtifacts(root)
            self.folder: Path | None = None
        else:
            self.folder = Path(root) / INDEX

    def _where(self, key: str) -> str:
        if not (len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"not an experiment key: {key!r}")
        return f"{key[:2]}/{key}.json"

    def get(self, key: str) -> Reused | None:
        """The entry of ``key``; None when there is none or it cannot be read (logged: the experiment runs)."""
        where = self._where(key)
        try:
            if self.remote:
                path = f"{self.remote.base}/{INDEX}/{where}"
                if not self.remote.fs.exists(path):
                    return None
                text = self.remote.fs.cat_file(path).decode()
            else:
                assert self.folder is not None
                text = (self.folder / where).read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            self.log.warning("the reuse index entry of %s cannot be read (%s): the experiment runs", key[:12], e)
            return None
        try:
            data = json.loads(text)
            entry = Reused(key=data["key"], dag_id=data["dag_id"], run_id=data["run_id"], task=data["task"],
                           index=int(data["index"]), when=data["when"], record=data["record"])
            if entry.key != key or not isinstance(entry.record, dict) or status_of(entry.record) is not Status.SUCCESS:
                raise ValueError("it is not an entry of this key, or not of an experiment that succeeded")
        except (ValueError, KeyError, TypeError) as e:
            self.log.warning("the reuse index entry of %s is damaged (%s): the experiment runs", key[:12], e)
            return None
        return entry

    def put(self, entry: Reused, *, replace: bool = False) -> bool:
        """Write ``entry`` unless its key has one already (the first writer's stays); whether it was written.

        :param replace: replace the key's entry (its end state is no longer stored: it was run again).
        :raises ValueError: the entry is not of an experiment that succeeded.
        """
        if status_of(entry.record) is not Status.SUCCESS:
            raise ValueError("only an experiment that succeeded goes into the reuse index")
        where = self._where(entry.key)
        body = json.dumps({"key": entry.key, "dag_id": entry.dag_id, "run_id": entry.run_id, "task": entry.task,
                           "index": entry.index, "when": entry.when, "record": entry.record}, default=str)
        if self.remote:
            path = f"{self.remote.base}/{INDEX}/{where}"
            if not replace and self.remote.fs.exists(path):
                return False
            self.remote.fs.pipe_file(path, body.encode())
            return True
        assert self.folder is not None
        target = self.folder / where
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=".entry.", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body)
            if replace:
                os.replace(scratch, target)
                return True
            os.link(scratch, target)  # atomic, and fails when the key has an entry: the first one stays
        except FileExistsError:
            return False
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)
        return True
