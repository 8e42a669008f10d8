"""Profiles, the data directory and Feast's ``RepoConfig``, built in memory.

A profile is one ``feature_store*.yaml`` in ``feature_repo/`` holding only ``${VAR}`` placeholders.
mt5lab reads it, checks that every variable it names is set (Feast would leave an unset ``${VAR}``
as literal text and fail later, far from the cause), substitutes the values in memory and builds
Feast's ``RepoConfig`` from the result. No file with a credential is ever written.

The timeframe picks the Feast project: D1 (the default) is the yaml's ``project``, every other
timeframe is ``<project>_<tf>``; each project holds the same six views and one ``mt5_v1`` service.

Feast's own ``feast`` CLI reads the same yaml with ``os.path.expandvars``, which keeps an unset
``${VAR}`` as literal text. The local profile's path hooks (the registry store and the SQLite online
store in :mod:`mt5lab.feast_repo`) pass every path through :func:`expand_defaults`, so an unset
``MT5LAB_DATA_DIR`` means :func:`data_dir` there too and a literal ``${VAR}`` never becomes a directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import yaml

from mt5lab.catalog import DEFAULT_TIMEFRAME, TIMEFRAMES, check_timeframe
from mt5lab.envsubst import expand, is_secret
from mt5lab.errors import ConfigError

PROFILES = {"local": "feature_store.yaml", "postgres": "feature_store.postgres.yaml"}
DEFAULT_PROFILE = "local"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def project_root() -> Path:
    """The checkout that holds ``feature_repo/`` (``MT5LAB_HOME`` overrides)."""
    env = os.environ.get("MT5LAB_HOME")
    if env:
        return Path(env).resolve()
    return _package_checkout() or Path.cwd().resolve()


@lru_cache(maxsize=1)
def _package_checkout() -> Path | None:
    """The checkout this package runs from (an editable install), or None (installed elsewhere)."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "feature_repo").is_dir() else None


@lru_cache(maxsize=1)
def load_env() -> None:
    """Read the git-ignored ``.env`` once (real environment variables win). Values are never logged."""
    from dotenv import load_dotenv

    load_dotenv(project_root() / ".env", override=False)


def data_dir() -> Path:
    """All local state: bars, features, registry, online db (``MT5LAB_DATA_DIR``, default ``data/``)."""
    load_env()
    env = os.environ.get("MT5LAB_DATA_DIR")
    return _absolute(env) if env else _default_data(project_root())


@lru_cache(maxsize=8)
def _default_data(root: Path) -> Path:
    return root / "data"


@lru_cache(maxsize=64)
def _absolute(path: str) -> Path:
    # Path.resolve costs a few syscalls; profiles are resolved on every online read.
    return Path(path).resolve()


def repo_path() -> Path:
    return project_root() / "feature_repo"


def profile_name(profile: str | None = None) -> str:
    load_env()
    name = (profile or os.environ.get("MT5LAB_PROFILE") or DEFAULT_PROFILE).strip().lower()
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; expected one of: {', '.join(PROFILES)}")
    return name


def project_for(base: str, timeframe: str) -> str:
    tf = check_timeframe(timeframe)
    return base if tf == DEFAULT_TIMEFRAME else f"{base}_{tf.lower()}"


def split_project(project: str) -> tuple[str, str]:
    """The inverse of :func:`project_for`: ``"mt5lab_h1"`` -> ``("mt5lab", "H1")``, ``"mt5lab"`` -> D1."""
    for tf in TIMEFRAMES:
        suffix = f"_{tf.lower()}"
        if tf != DEFAULT_TIMEFRAME and project.endswith(suffix) and len(project) > len(suffix):
            return project[: -len(suffix)], tf
    return project, DEFAULT_TIMEFRAME


def _defaults() -> dict[str, str]:
    return {"MT5LAB_DATA_DIR": str(data_dir())}


def expand_defaults(text: str) -> str:
    """``text`` with every ``${VAR}`` replaced by its value (environment, then ``.env``) or, when unset
    or empty, mt5lab's default for it (``MT5LAB_DATA_DIR``: :func:`data_dir`).

    For paths only (an error names the text). Feast leaves an unset ``${VAR}`` in place; this is what
    turns such a path into the directory mt5lab itself uses. A variable without a default that is
    not set is a ConfigError, never a directory named ``${VAR}``.
    """
    if "$" not in text:
        return text
    load_env()
    defaults = _defaults()

    def value(m: re.Match) -> str:
        var = m.group(1)
        val = os.environ.get(var) or defaults.get(var)
        if not val:
            raise ConfigError(f"{var} is not set (nor in .env), so the path {text!r} cannot be resolved")
        return val

    return _VAR.sub(value, text)


def _yaml_text(name: str) -> str:
    """The profile's yaml without comment lines (comments may mention ``${VAR}`` as prose), re-read
    when the file changes.

    Keyed by the file's path, size and modification time, so a hot loop that resolves the profile on
    every call (``online_features`` does) reads and parses YAML once, and an edited yaml is seen at once.
    """
    path = _yaml_path(project_root(), name)
    try:
        st = os.stat(path)
    except OSError:
        raise ConfigError(f"profile {name!r}: {path} does not exist") from None
    return _parse_yaml(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _yaml_path(root: Path, name: str) -> str:
    return str(root / "feature_repo" / PROFILES[name])


@lru_cache(maxsize=16)
def _parse_yaml(path: str, mtime_ns: int, size: int) -> str:
    lines = Path(path).read_text().splitlines()
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith("#"))


def required_vars(profile: str | None = None) -> list[str]:
    """Variables the profile's yaml names, in order of first use."""
    return list(_vars_of(_yaml_text(profile_name(profile))))


@lru_cache(maxsize=16)
def _vars_of(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for m in _VAR.finditer(text):
        seen.setdefault(m.group(1), None)
    return tuple(seen)


def check_env(profile: str | None = None) -> dict[str, str]:
    """Values for every ``${VAR}`` of the profile, or a ConfigError naming *all* missing ones."""
    name = profile_name(profile)
    return _check_env(name, _vars_of(_yaml_text(name)))


def _check_env(name: str, variables: tuple[str, ...]) -> dict[str, str]:
    defaults = _defaults()
    values, missing = {}, []
    for var in variables:
        val = os.environ.get(var, defaults.get(var))
        # A *_PASSWORD must be set but may be empty (trust auth, a Redis without requirepass).
        if val is None or (val == "" and not is_secret(var)):
            missing.append(var)
        else:
            values[var] = val
    if missing:
        raise ConfigError(
            f"profile {name!r} needs environment variables that are not set: {', '.join(missing)} "
            f"(set them in the environment or in .env; see .env.example)"
        )
    return values


@dataclass(frozen=True)
class Profile:
    """A resolved profile. ``raw`` holds secrets: never print or log it."""

    name: str
    raw: dict
    base_project: str

    def __repr__(self) -> str:  # keep secrets out of reprs, logs and tracebacks
        return f"Profile(name={self.name!r}, project={self.base_project!r})"

    @cached_property
    def fingerprint(self) -> str:
        """A stable text of the whole resolved profile (holds secrets: a cache key, never shown)."""
        import json

        return json.dumps(self.raw, sort_keys=True, default=str)

    def repo_config(self, timeframe: str = DEFAULT_TIMEFRAME):
        from feast.repo_config import RepoConfig

        raw = dict(self.raw)
        raw["project"] = project_for(self.base_project, timeframe)
        cfg = RepoConfig(**raw)
        cfg.repo_path = repo_path()
        return cfg

    def setting(self, *path: str, default=None):
        node = self.raw
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def load_profile(profile: str | None = None) -> Profile:
    """Resolve a profile: check variables, substitute in memory, parse."""
    name = profile_name(profile)
    text = _yaml_text(name)
    values = _check_env(name, _vars_of(text))
    return _profile(name, text, tuple(values.items()))


@lru_cache(maxsize=32)
def _profile(name: str, text: str, values: tuple[tuple[str, str], ...]) -> Profile:
    """The profile for one yaml text and one set of variable values (kept in memory only): the same
    inputs give the same object, so readers cached per profile are found without re-parsing."""
    parsed = yaml.safe_load(text)
    if not isinstance(parsed, dict) or "project" not in parsed:
        raise ConfigError(f"{PROFILES[name]} is not a Feast feature_store.yaml (no 'project')")
    # Substituted into the parsed strings, encoded per context (URL, Redis string): see envsubst.
    raw = expand(parsed, dict(values))
    return Profile(name=name, raw=raw, base_project=raw["project"])


def resolve(profile: str | Profile | None = None) -> Profile:
    """A loaded :class:`Profile` as it is, else :func:`load_profile` of a name (None: ``MT5LAB_PROFILE``)."""
    return profile if isinstance(profile, Profile) else load_profile(profile)
