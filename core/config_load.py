"""Loading the configuration: TOML file plus environment overrides -> a validated :class:`Config`.

Built once per process by :func:`load_config` from a TOML file (default ``twotower.toml``
at the project root, or ``$TWOTOWER_CONFIG``) plus environment overrides, then passed
explicitly. Nothing else in the project reads the environment for settings.

Environment overrides:
  * ``TWOTOWER_DATA_ROOT``, ``TWOTOWER_ARTIFACT_ROOT``, ``TWOTOWER_REPORTS_ROOT``,
    ``TWOTOWER_REMOTE``, ``TWOTOWER_SPARK_MASTER``: the common ones, by name;
  * ``TWOTOWER__<SECTION>__<KEY>=value``: any scalar key, e.g.
    ``TWOTOWER__ETL__WINDOW_DAYS=3`` (parsed with the key's declared type).

Unknown sections or keys and values of the wrong type raise :class:`ConfigError` naming the
key, e.g. ``etl.window_dayz: unknown key (known: ...)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from core.config import Config, ConfigError, PathsConfig

DEFAULT_CONFIG_NAME = "twotower.toml"

_NAMED_OVERRIDES = {
    "TWOTOWER_DATA_ROOT": ("paths", "data_root"),
    "TWOTOWER_ARTIFACT_ROOT": ("paths", "artifact_root"),
    "TWOTOWER_REPORTS_ROOT": ("paths", "reports_root"),
    "TWOTOWER_SPARK_MASTER": ("spark", "master"),
    "TWOTOWER_REMOTE": ("paths", "remote"),
}


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration.

    Args:
        path: TOML file. ``None`` means ``$TWOTOWER_CONFIG``, else ``./twotower.toml`` if it
            exists, else the built-in defaults.
        env: environment used for overrides (default ``os.environ``).

    Relative paths in ``[paths]`` are resolved against the config file's directory (the
    current directory when no file is used), so every process agrees on them.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is None:
        path = env.get("TWOTOWER_CONFIG") or (DEFAULT_CONFIG_NAME if Path(DEFAULT_CONFIG_NAME).exists() else None)
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
        try:
            raw = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file}: invalid TOML: {exc}") from exc
        base_dir = file.resolve().parent

    for var, (section, key) in _NAMED_OVERRIDES.items():
        if env.get(var):
            raw.setdefault(section, {})[key] = env[var]
    for var, value in env.items():
        if var.startswith("TWOTOWER__"):
            parts = var[len("TWOTOWER__") :].lower().split("__")
            if len(parts) != 2:
                raise ConfigError(f"environment override {var}: expected TWOTOWER__<SECTION>__<KEY>")
            section, key = parts
            raw.setdefault(section, {})[key] = _EnvString(value)

    cfg = _validated(_build(Config, raw, ""))
    return dataclasses.replace(cfg, paths=_resolved_paths(cfg.paths, base_dir))


def config_from_dict(raw: Mapping[str, Any], base_dir: Path | None = None) -> Config:
    """Build a Config from a dict with the same validation as a file (handy in tests)."""
    cfg = _validated(_build(Config, dict(raw), ""))
    return dataclasses.replace(cfg, paths=_resolved_paths(cfg.paths, base_dir or Path.cwd()))


_ROOTS = ("data_root", "artifact_root", "reports_root")


def _validated(cfg: Config) -> Config:
    """Rules across keys, checked when the config is loaded rather than deep inside a step."""
    w, e = cfg.etl.window_days, cfg.etl.eval_days
    if e < 1 or w <= e:
        raise ConfigError(
            f"etl.window_days ({w}) must exceed etl.eval_days ({e}) >= 1: the window needs at least one training day"
        )
    return cfg


def _resolved_paths(paths: PathsConfig, base: Path) -> PathsConfig:
    """Roots made absolute against the config file's folder; ``remote`` checked."""
    if paths.remote and not re.fullmatch(r"s3a?://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", paths.remote):
        raise ConfigError(
            f"paths.remote: {paths.remote!r} is not an object-store location: expected s3://bucket/prefix "
            "(or \"\" to keep everything in the local roots)"
        )
    return dataclasses.replace(paths, **{name: _resolve(getattr(paths, name), base) for name in _ROOTS})


class _EnvString(str):
    """A value from the environment: parsed into the declared type rather than type-checked."""


def _resolve(p: Path, base: Path) -> Path:
    p = Path(os.path.expanduser(str(p)))
    return p if p.is_absolute() else (base / p).resolve()


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if isinstance(value, _EnvString):
        value = _parse_env(tp, str(value), key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for a in args:
            try:
                return _coerce(a, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not match {tp}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{key}: expected a path string, got {type(value).__name__} {value!r}")
        return Path(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - a schema bug


def _parse_env(tp: Any, text: str, key: str) -> Any:
    base = typing.get_origin(tp) or tp
    try:
        if base is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if base in (tuple, dict):
            return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{key}: cannot parse environment value {text!r} as {tp}") from exc
    return text


