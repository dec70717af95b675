"""A node's configuration from one TOML file and the environment, generic over its dataclass.

Every field of :class:`~regfed.gateway.daemon.NodeConfig` (or of another node's configuration
dataclass passed as ``schema``, e.g. :class:`~regfed.oversight.config.OversightConfig`) is a key
of the file (same name) and an environment variable (``REGFED_`` + the name in capitals); a field
added to NodeConfig is configurable both ways with no change here, because keys, types and
defaults are read from the dataclass itself. Precedence, lowest first: the field's default, the
file, the environment. A schema may refuse a value its type allows (OversightConfig refuses a
time zone that does not exist) by raising :class:`~regfed.oversight.config.SettingRefused` when
it is made; the refusal is reported as a ConfigError naming where the value came from.

Values are coerced from the field's annotation: ``str``, ``int``, ``float``, ``bool``, ``Path``,
``tuple[Path, ...]``, ``Literal[...]`` and ``X | None``. Relative paths in the file resolve
against the file's folder (so a folder of credentials and its config can move together); relative
paths in the environment resolve against the working directory, as a shell user expects.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from regfed.oversight.config import SettingRefused

from .daemon import NodeConfig

#: A node's configuration dataclass.
C = TypeVar("C")

ENV_PREFIX = "REGFED_"
#: Where ``regfed node run/check/health`` look for the file when ``--config`` is not given.
CONFIG_ENV = "REGFED_CONFIG"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which key and what to do."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class LoadedConfig(Generic[C]):
    config: C
    #: field name -> where its value came from: "default", the file's path, or "env REGFED_X".
    sources: dict[str, str]
    file: Path | None


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def fields(schema: type[Any] = NodeConfig) -> dict[str, Any]:
    """The field names and their resolved annotations, in declaration order."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema) if f.init}


def _required(schema: type[Any]) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(schema)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


@overload
def load_config(
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    schema: type[NodeConfig] = NodeConfig,
    **overrides: Any,
) -> LoadedConfig[NodeConfig]: ...
@overload
def load_config(
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    schema: type[C],
    **overrides: Any,
) -> LoadedConfig[C]: ...
def load_config(
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    schema: type[Any] = NodeConfig,
    **overrides: Any,
) -> LoadedConfig[Any]:
    """The node's configuration: defaults, then ``file``, then ``environ``, then ``overrides``
    (command-line flags). Raises :class:`ConfigError` naming the key at fault. ``schema`` is
    the configuration dataclass: NodeConfig (or a subclass; tests use one to show that a new
    field needs no change here), or OversightConfig for the oversight node."""
    environ = os.environ if environ is None else environ
    known = fields(schema)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if file is not None:
        # Absolute from here on: the node may be started from anywhere.
        base = file.resolve().parent
        for key, raw in _read_file(file).items():
            if key not in known:
                raise ConfigError(
                    f"{file}: unknown key {key!r}; the keys are: {', '.join(known)}", key
                )
            values[key] = _coerce(key, known[key], raw, base=base, where=str(file))
            sources[key] = str(file)
    for key, annotation in known.items():
        name = env_name(key)
        if name in environ:
            values[key] = _coerce(key, annotation, environ[name], base=None, where=name)
            sources[key] = f"env {name}"
    for key, value in overrides.items():
        values[key] = value
        sources[key] = "command line"
    missing = [key for key in _required(schema) if key not in values]
    if missing:
        where = f"in {file} " if file is not None else ""
        raise ConfigError(
            "missing setting(s) "
            + ", ".join(missing)
            + f": set them {where}as `key = value` or in the environment as "
            + ", ".join(env_name(k) for k in missing),
            missing[0],
        )
    for key in known:
        sources.setdefault(key, "default")
    try:
        config = schema(**values)
    except SettingRefused as refused:
        # The schema judged a value its type allowed (e.g. a time zone name); say where it was.
        raise ConfigError(f"{sources[refused.key]}: {refused}", refused.key) from None
    return LoadedConfig(config, sources, file)


def _read_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {file}: pass --config FILE "
            f"(see deploy/node.example.toml) or set {CONFIG_ENV}"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file} is not valid TOML: {error}") from None
    tables = [k for k, v in data.items() if isinstance(v, dict)]
    if tables:
        raise ConfigError(
            f"{file}: [{tables[0]}] is a table; a node's file is flat `key = value` lines",
            tables[0],
        )
    return data


def _coerce(key: str, annotation: Any, raw: Any, *, base: Path | None, where: str) -> Any:
    """``raw`` (a TOML value, or an environment string) as the field's type."""
    from_env = isinstance(raw, str) and base is None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        if from_env and raw == "":
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, inner, raw, base=base, where=where)
    if origin is typing.Literal:
        if raw not in args:
            raise _bad(key, where, raw, "one of " + ", ".join(repr(a) for a in args))
        return raw
    if origin is tuple and args[-1:] == (Ellipsis,):
        if from_env:
            items: list[Any] = [p for p in raw.split(os.pathsep) if p]
        elif isinstance(raw, list):
            items = raw
        elif isinstance(raw, str):
            items = [raw]
        else:
            raise _bad(key, where, raw, "a list of strings")
        return tuple(_coerce(key, args[0], item, base=base, where=where) for item in items)
    if annotation is Path:
        if not isinstance(raw, str) or not raw:
            raise _bad(key, where, raw, "a path (a non-empty string)")
        path = Path(raw).expanduser()
        return base / path if base is not None and not path.is_absolute() else path
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        if from_env and raw.strip().lower() in TRUE | FALSE:
            return raw.strip().lower() in TRUE
        raise _bad(key, where, raw, "true or false")
    if annotation in (int, float):
        if isinstance(raw, bool):
            raise _bad(key, where, raw, "a number")
        if isinstance(raw, int | float) and (annotation is float or isinstance(raw, int)):
            return annotation(raw)
        if from_env:
            try:
                return annotation(raw.strip())
            except ValueError:
                pass
        raise _bad(key, where, raw, "a whole number" if annotation is int else "a number")
    if annotation is str:
        if not isinstance(raw, str):
            raise _bad(key, where, raw, 'a string (in quotes: key = "value")')
        if key == "database" and base is not None:
            return _relative_sqlite(raw, base)
        return raw
    raise ConfigError(f"{key}: a setting of type {annotation!r} cannot be configured yet", key)


def _relative_sqlite(url: str, base: Path) -> str:
    """``sqlite:///node.db`` in a file means beside the file, like every other relative path."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{base / url.removeprefix('sqlite:///')}"
    return url


def _bad(key: str, where: str, raw: Any, expected: str) -> ConfigError:
    return ConfigError(f"{where}: {key} = {raw!r} is not {expected}", key)
