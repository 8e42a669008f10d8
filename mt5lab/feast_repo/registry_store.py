"""The local profile's Feast registry file, written atomically.

Feast's ``FileRegistryStore`` rewrites ``registry.db`` in place (``open(path, "wb")`` truncates it
first), so a full disk, a file-size limit or a kill during ``apply`` or ``materialize`` leaves a
truncated registry that no later command can parse ("Wire format was corrupt"). This store writes
the new registry next to the old one, fsyncs it and swaps it in with one ``os.replace``: after any
failure the old registry is still there, whole. The local profile selects it with
``registry.registry_store_type`` in ``feature_repo/feature_store.yaml``.

It also resolves the path the way mt5lab does: Feast's ``feast`` CLI hands it the yaml's
``${MT5LAB_DATA_DIR}/registry.db`` verbatim when the variable is not exported, and Feast's store would
create a directory literally named ``${MT5LAB_DATA_DIR}`` in the feature repo;
:func:`mt5lab.config.expand_defaults` makes it the default data dir (``.env`` included). Opening it
inside a ``feast`` command first checks that the command's project, profile and data dir are the
ones the variables name (:func:`mt5lab.feast_repo.feast_cli.check_feast_command`).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from feast.infra.registry.file import FileRegistryStore
from feast.utils import _utc_now

from mt5lab.config import expand_defaults
from mt5lab.errors import StoreError
from mt5lab.feast_repo.feast_cli import check_feast_command


class AtomicFileRegistryStore(FileRegistryStore):
    """``FileRegistryStore`` with an atomic write (temp file, fsync, ``os.replace``) and mt5lab's
    path resolution (an unset ``${MT5LAB_DATA_DIR}`` is the default data dir)."""

    def __init__(self, registry_config, repo_path: Path | None):
        check_feast_command()
        path = Path(expand_defaults(registry_config.path))
        self._filepath = path if path.is_absolute() or repo_path is None else Path(repo_path) / path

    def _write_registry(self, registry_proto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        path = Path(self._filepath)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".registry-", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise StoreError(f"cannot write the feature registry {path}: {exc.strerror or exc}") from None
        try:
            os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o644)
            with os.fdopen(fd, "wb", buffering=0) as fh:
                data = memoryview(registry_proto.SerializeToString())
                while data:  # a raw write may be partial (disk full, size limit): the next one raises
                    data = data[fh.write(data):]
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"cannot write the feature registry {path}: {exc.strerror or exc}; "
                             f"the previous registry is unchanged") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
