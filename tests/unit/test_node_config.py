"""A node's configuration from its TOML file and REGFED_* variables, generic over NodeConfig."""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from datetime import UTC, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest

from regfed.gateway.config import ConfigError, env_name, fields, load_config
from regfed.gateway.daemon import NodeConfig
from regfed.oversight.config import OversightConfig

pytestmark = pytest.mark.unit

MINIMAL = """
registry = "PA"
listen = "0.0.0.0:50051"
database = "postgresql://regfed@pa-db/registry"
ca = "certs/ca.pem"
certificate = "certs/PA/tls.pem"
key = "certs/PA/tls.key"
signing_key = "certs/PA/signing.key"
directory = "certs/directory.json"
"""


def write(folder: Path, text: str) -> Path:
    file = folder / "node.toml"
    file.write_text(text)
    return file


def test_relative_paths_resolve_against_the_files_folder(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL + 'crls = ["certs/PA/crl.pem", "/abs/crl.pem"]\n')
    config = load_config(file, environ={}).config
    base = tmp_path.resolve()
    assert config.ca == base / "certs/ca.pem"
    assert config.key == base / "certs/PA/tls.key"
    assert config.crls == (base / "certs/PA/crl.pem", Path("/abs/crl.pem"))
    assert config.database == "postgresql://regfed@pa-db/registry"
    assert config.shutdown_grace == NodeConfig.shutdown_grace  # the default


def test_a_relative_sqlite_database_in_the_file_is_beside_it(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL.replace("postgresql://regfed@pa-db/registry", "sqlite:///x.db"))
    assert load_config(file, environ={}).config.database == f"sqlite:///{tmp_path.resolve()}/x.db"


def test_the_environment_overrides_the_file_and_says_so(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL + "shutdown_grace = 3\nreflection = true\n")
    environ = {
        "REGFED_LISTEN": "127.0.0.1:6000",
        "REGFED_SHUTDOWN_GRACE": "2.5",
        "REGFED_REFLECTION": "off",
        "REGFED_CRLS": os.pathsep.join(["a/crl.pem", "/b/crl.pem"]),
        "REGFED_UNRELATED": "ignored: other commands' variables share the prefix",
    }
    loaded = load_config(file, environ=environ)
    config = loaded.config
    assert (config.listen, config.shutdown_grace, config.reflection) == (
        "127.0.0.1:6000",
        2.5,
        False,
    )
    # Relative paths from the environment are the shell's: relative to the working directory.
    assert config.crls == (Path("a/crl.pem"), Path("/b/crl.pem"))
    assert loaded.sources["listen"] == "env REGFED_LISTEN"
    assert loaded.sources["registry"] == str(file)
    assert loaded.sources["hold_seconds"] == "default"


def test_everything_can_come_from_the_environment_alone() -> None:
    environ = {env_name(k): v for k, v in _sample_strings().items()}
    config = load_config(None, environ=environ).config
    assert config.registry == "PA" and config.ca == Path("/certs/ca.pem")


def test_command_line_overrides_win(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL)
    loaded = load_config(file, environ={"REGFED_REFLECTION": "0"}, reflection=True)
    assert loaded.config.reflection is True
    assert loaded.sources["reflection"] == "command line"


def test_an_unknown_key_is_named_with_the_allowed_ones(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL + "listen_port = 50051\n")
    with pytest.raises(ConfigError) as refused:
        load_config(file, environ={})
    assert refused.value.key == "listen_port"
    message = str(refused.value)
    assert "unknown key 'listen_port'" in message
    assert all(name in message for name in fields())


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ('shutdown_grace = "soon"', "shutdown_grace", "not a number"),
        ("reflection = 1", "reflection", "not true or false"),
        ("listen = 50051", "listen", "not a string"),
        ("crls = 3", "crls", "not a list of strings"),
        ('ca = ""', "ca", "not a path"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    tmp_path: Path, line: str, key: str, expected: str
) -> None:
    text = "\n".join(
        ln for ln in MINIMAL.splitlines() if not ln.startswith(line.partition(" ")[0] + " ")
    )
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, text + "\n" + line + "\n"), environ={})
    assert refused.value.key == key
    assert expected in str(refused.value)


def test_bad_environment_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"REGFED_SHUTDOWN_GRACE: .* not a number"):
        load_config(write(tmp_path, MINIMAL), environ={"REGFED_SHUTDOWN_GRACE": "ten"})
    with pytest.raises(ConfigError, match=r"REGFED_REFLECTION: .* not true or false"):
        load_config(write(tmp_path, MINIMAL), environ={"REGFED_REFLECTION": "maybe"})


def test_missing_settings_say_both_ways_to_set_them(tmp_path: Path) -> None:
    file = write(tmp_path, 'registry = "PA"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(file, environ={"REGFED_LISTEN": "0.0.0.0:1"})
    message = str(refused.value)
    assert "database" in message and "REGFED_DATABASE" in message
    assert "listen" not in message.partition(":")[0]


def test_not_toml_and_tables_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "registry = PA\n"), environ={})
    with pytest.raises(ConfigError, match=r"\[tls\] is a table"):
        load_config(write(tmp_path, MINIMAL + "[tls]\nkey = 'x'\n"), environ={})
    with pytest.raises(ConfigError, match="no configuration file"):
        load_config(tmp_path / "absent.toml", environ={})


@dataclass(frozen=True)
class Extended(NodeConfig):
    """Fields of the kinds another branch adds to NodeConfig (metrics, log format)."""

    metrics_listen: str | None = None
    log_format: Literal["text", "json"] = "text"
    workers: int = 2


def test_fields_added_to_node_config_need_no_change_in_the_loader(tmp_path: Path) -> None:
    file = write(tmp_path, MINIMAL + 'metrics_listen = "127.0.0.1:9100"\nlog_format = "json"\n')
    config = load_config(file, environ={"REGFED_WORKERS": "4"}, schema=Extended).config
    assert isinstance(config, Extended)
    assert (config.metrics_listen, config.log_format, config.workers) == (
        "127.0.0.1:9100",
        "json",
        4,
    )
    # An empty variable clears an optional setting; a Literal keeps to its choices.
    cleared = load_config(file, environ={"REGFED_METRICS_LISTEN": ""}, schema=Extended).config
    assert isinstance(cleared, Extended) and cleared.metrics_listen is None
    with pytest.raises(ConfigError, match="one of 'text', 'json'"):
        load_config(file, environ={"REGFED_LOG_FORMAT": "xml"}, schema=Extended)


def _sample_strings() -> dict[str, str]:
    """A value, as an environment string, for every NodeConfig field (by its type)."""
    samples = {
        str: "PA",
        float: "1.5",
        int: "3",
        bool: "true",
        Path: "/certs/ca.pem",
    }
    out = {}
    for name, annotation in fields().items():
        origin = typing.get_origin(annotation)
        if origin is tuple:
            out[name] = "/certs/crl.pem"
        elif origin is Literal:
            out[name] = str(typing.get_args(annotation)[0])
        else:
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            out[name] = samples[inner[0] if inner else annotation]
    return out


def test_every_node_config_field_is_settable_from_file_and_environment(tmp_path: Path) -> None:
    """Guards the genericity: a field whose type the loader cannot read fails here."""
    strings = _sample_strings()
    from_env = load_config(None, environ={env_name(k): v for k, v in strings.items()}).config
    lines = []
    for name, value in dataclasses.asdict(from_env).items():
        lines.append(f"{name} = {_toml(value)}")
    from_file = load_config(write(tmp_path, "\n".join(lines) + "\n"), environ={}).config
    assert from_file == from_env


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"'


def test_the_example_file_loads_with_paths_beside_it() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "node.example.toml"
    loaded = load_config(example, environ={})
    assert loaded.config.registry == "PA"
    assert loaded.config.ca == example.parent / "certs" / "ca.pem"
    # Only real settings, each from the file (a field added later may rely on its default).
    assert {k for k, source in loaded.sources.items() if source == str(example)} >= {
        f.name
        for f in dataclasses.fields(NodeConfig)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


OVERSIGHT = (
    'code = "EPA"\nlisten = "0.0.0.0:50051"\nca = "ca.pem"\ncertificate = "tls.pem"\n'
    'key = "tls.key"\nsigning_key = "signing.key"\ndirectory = "directory.json"\n'
    'database = "sqlite:///runs.db"\n'
)


def test_the_oversight_nodes_configuration_uses_the_same_loader(tmp_path: Path) -> None:
    file = tmp_path / "oversight.toml"
    file.write_text(OVERSIGHT)
    environ = {"REGFED_SHUTDOWN_GRACE": "3", "REGFED_METRICS_LISTEN": "9100"}
    loaded = load_config(file, environ=environ, schema=OversightConfig)
    config = loaded.config
    assert isinstance(config, OversightConfig) and config.code == "EPA"
    assert config.ca == tmp_path.resolve() / "ca.pem"
    assert (config.shutdown_grace, config.metrics_listen) == (3.0, "9100")
    assert loaded.sources["shutdown_grace"] == "env REGFED_SHUTDOWN_GRACE"
    # Its own run database, beside the file like a node's.
    assert config.database == f"sqlite:///{tmp_path.resolve() / 'runs.db'}"
    # A registry node's key is not an oversight node's.
    with pytest.raises(ConfigError, match="unknown key 'registry'"):
        file.write_text(file.read_text() + 'registry = "PA"\n')
        load_config(file, environ={}, schema=OversightConfig)


def test_the_oversight_schedule_defaults_to_two_oclock_utc_nightly(tmp_path: Path) -> None:
    file = tmp_path / "oversight.toml"
    file.write_text(OVERSIGHT)
    config = load_config(file, environ={}, schema=OversightConfig).config
    assert (config.reconcile_at, config.reconcile_timezone, config.reconcile_nightly) == (
        "02:00",
        "UTC",
        True,
    )
    assert (config.reconcile_time, config.reconcile_zone) == (time(2, 0), UTC)
    environ = {
        "REGFED_RECONCILE_AT": "23:30",
        "REGFED_RECONCILE_TIMEZONE": "America/New_York",
        "REGFED_RECONCILE_NIGHTLY": "false",
    }
    config = load_config(file, environ=environ, schema=OversightConfig).config
    assert config.reconcile_time == time(23, 30)
    assert config.reconcile_zone == ZoneInfo("America/New_York")
    assert config.reconcile_nightly is False


@pytest.mark.parametrize(
    ("line", "key", "says"),
    [
        (
            'reconcile_at = "2:00"',
            "reconcile_at",
            'write it as 24-hour HH:MM, e.g. reconcile_at = "02:00"',
        ),
        ('reconcile_at = "24:00"', "reconcile_at", "is not a time of day"),
        ('reconcile_at = "02:00:30"', "reconcile_at", "is not a time of day"),
        (
            'reconcile_timezone = "Mars/Olympus"',
            "reconcile_timezone",
            'reconcile_timezone = "America/New_York"',
        ),
        ('reconcile_timezone = "../etc/passwd"', "reconcile_timezone", "is not an IANA time zone"),
        ('reconcile_nightly = "sometimes"', "reconcile_nightly", "is not true or false"),
        ('database = "mysql://x@h/db"', "database", "give sqlite:///FILE"),
    ],
)
def test_bad_oversight_settings_are_refused_saying_what_to_write(
    tmp_path: Path, line: str, key: str, says: str
) -> None:
    file = tmp_path / "oversight.toml"
    file.write_text(OVERSIGHT.replace('database = "sqlite:///runs.db"\n', "") + line + "\n")
    if key != "database":
        file.write_text(file.read_text() + 'database = "sqlite:///runs.db"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(file, environ={}, schema=OversightConfig)
    assert refused.value.key == key
    assert says in str(refused.value)
    assert str(refused.value).startswith(str(file))


def test_a_bad_schedule_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    file = tmp_path / "oversight.toml"
    file.write_text(OVERSIGHT)
    with pytest.raises(ConfigError, match=r"^env REGFED_RECONCILE_AT: reconcile_at = '7pm'"):
        load_config(file, environ={"REGFED_RECONCILE_AT": "7pm"}, schema=OversightConfig)


def test_the_oversight_node_needs_its_run_database(tmp_path: Path) -> None:
    file = tmp_path / "oversight.toml"
    file.write_text(OVERSIGHT.replace('database = "sqlite:///runs.db"\n', ""))
    with pytest.raises(ConfigError, match=r"missing setting.*database.*REGFED_DATABASE"):
        load_config(file, environ={}, schema=OversightConfig)
