"""The one settings root, built by the CLI and passed down (never at import time).

Sources, highest precedence first: CLI overrides, environment (`AUTOSCALER_*`, nested with
`__`), a `.env` file in the working directory, the TOML file named by `--config` or
`AUTOSCALER_CONFIG`, then the defaults below. The env names are a documented contract.

Unknown keys: the model ignores them, because the working directory is usually a Laravel
app root whose `.env` holds the app's own keys (APP_KEY, ...) and the environment is shared
with other programs. `load_settings` then rejects, by name, the unknown keys that can only be
meant for autoscaler: every key of the TOML file and `AUTOSCALER_*` keys of `.env`.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from autoscaler.constants import DEFAULT_REDIS_PREFIX

CONFIG_ENV = "AUTOSCALER_CONFIG"
# A fleet's name and a host's id are parts of Redis key names.
FLEET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MASK = "***"
# Where the settings file is looked for when neither --config nor AUTOSCALER_CONFIG names one,
# first found wins (docs/getting-started.md, "Configuration"). The first is relative to the
# working directory.
SEARCH_PATHS: tuple[Path, ...] = (
    Path("autoscaler.toml"),
    Path("/etc/autoscaler/autoscaler.toml"),
)
DEFAULT_ORIGIN = "default"


class Settings(BaseSettings):
    """Everything the daemon and the CLI need to know about this host."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOSCALER_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",  # load_settings names the unknown keys meant for us
        validate_default=True,
        allow_inf_nan=False,  # "inf" passes gt=0, then breaks every sleep and sum
    )
    # Set by load_settings: the settings file read (None: none) and each field's source.
    _config_file: Path | None = PrivateAttr(default=None)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def config_file(self) -> Path | None:
        """The settings file these settings were read from (None: none was found)."""
        return self._config_file

    def origin(self, name: str) -> str:
        """Where a field's value came from: `--flag`, `env AUTOSCALER_X`, `.env`, the
        settings file's path, or `default`."""
        return self._origins.get(name, DEFAULT_ORIGIN)

    def defaults_used(self, *names: str) -> bool:
        """Every named field has its default value: no source set it."""
        return all(self.origin(name) == DEFAULT_ORIGIN for name in names)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis holding the Laravel queues: redis://[:password@]host:port/db, "
        "rediss://... or unix:///path/redis.sock?db=0. A password in it is masked in output.",
    )
    redis_prefix: str = Field(
        default=DEFAULT_REDIS_PREFIX,
        description="Laravel's Redis key prefix: `<app>_database_` up to Laravel 11, "
        "`<app>-database-` from 12, or REDIS_PREFIX from the app's .env.",
    )
    supervisor_url: str = Field(
        default="unix:///var/run/supervisor.sock",
        description="supervisord's XML-RPC endpoint: unix:///path/supervisor.sock or "
        "http://host:port (inet_http_server).",
    )
    supervisor_username: str | None = Field(
        default=None, description="Username of supervisord's http server, if it has one."
    )
    supervisor_password: SecretStr | None = Field(
        default=None, description="Password of supervisord's http server (a secret, never logged)."
    )
    redis_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Timeout of the Redis connection and of each tick's read, s; a slower "
        "Redis makes the tick's observation 'unavailable' instead of blocking the loop.",
    )
    supervisor_timeout_s: float = Field(
        default=5.0, gt=0, description="Timeout of every XML-RPC call to supervisord, s."
    )
    log_max_bytes_per_tick: int = Field(
        default=1 << 20,
        ge=4096,
        description="Most bytes read from one worker log per tick; the rest is read on later "
        "ticks. A log more than 4x this behind is skipped to its end (that tick's counts then "
        "come from Redis).",
    )
    include_file: Path = Field(
        default=Path("/etc/supervisor/conf.d/autoscaler-workers.conf"),
        description="The Supervisor program file autoscaler owns and rewrites; it must be "
        "matched by an [include] line of supervisord.conf and hold nothing else.",
    )
    include_backups: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Previous versions of the include file kept (newest first) in the state "
        "directory, for rollback and for reading what changed.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where autoscaler keeps the include file's previous versions, the last "
        "refused text and its apply lock (default: the hidden directory "
        "`.<include file name>.autoscaler` beside the include file).",
    )
    policies_dir: Path = Field(
        default=Path("policies"), description="Directory of the per-pool policy files (*.toml)."
    )
    memory_budget_mb: float = Field(
        default=4608.0,
        gt=0,
        description="Host memory budget for all managed workers together, in MB.",
    )
    memory_reserve_mb: float = Field(
        default=0.0,
        ge=0,
        description="Part of the budget held back as a safety margin, in MB.",
    )
    interval_s: float = Field(
        default=5.0, gt=0, description="Seconds between two ticks of the control loop."
    )
    simulate_startup_s: float = Field(
        default=0.26,
        ge=0,
        description="Simulator: seconds from adding a worker until it takes its first job "
        "(Supervisor's spawn plus the framework's boot). Default: the median measured by "
        "tests/benchmarks/bench_startup.py on a real supervisord with the fake worker.",
    )
    dry_run: bool = Field(
        default=False, description="Log decisions and file diffs but change nothing."
    )
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Minimum level of log lines."
    )
    log_json: bool = Field(default=False, description="Write log lines as JSON objects.")
    summary_interval_s: float = Field(
        default=300.0, gt=0, description="Seconds between the daemon's periodic summary lines."
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve Prometheus metrics on this port (off)."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the metrics endpoint binds to."
    )
    webhook_url: SecretStr | None = Field(
        default=None,
        description="POST alerts as JSON to this URL (a secret: WeCom and Slack URLs hold tokens).",
    )
    webhook_format: Literal["generic", "wecom", "slack"] = Field(
        default="generic", description="Body of the alert webhook: generic JSON, WeCom or Slack."
    )
    alert_interval_s: float = Field(
        default=600.0, ge=0, description="The same alert (kind and pool) at most this often, s."
    )

    fleet: str | None = Field(
        default=None,
        description="Fleet name: several hosts share each pool, coordinated through the Redis "
        "of redis_url (docs/fleet.md). Unset: this host decides alone.",
    )
    host_id: str | None = Field(
        default=None,
        description="This host's name in its fleet (unset: the hostname, in a fleet); unique "
        "per fleet.",
    )

    @field_validator("fleet", "host_id")
    @classmethod
    def _fleet_names(cls, value: str | None) -> str | None:
        if value is not None and not FLEET_NAME.match(value):
            raise ValueError(
                "use letters, digits, '.', '_' or '-' (at most 100), starting with a letter or "
                "digit"
            )
        return value

    @model_validator(mode="after")
    def _host_id_in_a_fleet(self) -> Settings:
        """In a fleet, an unset host_id is the hostname, which must then be usable."""
        if self.fleet is not None and self.host_id is None:
            name = socket.gethostname()
            if not FLEET_NAME.match(name):
                raise ValueError(
                    f"host_id: unset, and the hostname {name!r} cannot name a host in a fleet; "
                    "set AUTOSCALER_HOST_ID"
                )
            self.host_id = name
        return self

    @field_validator("supervisor_url")
    @classmethod
    def _supervisor_url_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("unix", "http", "https"):
            raise ValueError("must start with unix:// or http(s)://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parts(cls, value: str) -> str:
        # Checked here so a bad URL is a config error, not a traceback from redis-py at
        # connect time; no message quotes the URL, which may hold a password.
        from redis.connection import parse_url

        try:
            parts = urlsplit(value)
        except ValueError as exc:  # e.g. an unclosed [ of an IPv6 host
            raise ValueError(f"is not a URL: {exc}") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        try:
            port = parts.port
        except ValueError:
            port = 0
        database = parts.path.strip("/")
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError("needs the socket's path: unix:///path/redis.sock?db=0")
        elif port == 0:  # not a number, out of range, or 0 (which redis-py reads as 6379)
            raise ValueError("the port must be a whole number from 1 to 65535")
        elif database and not (database.isascii() and database.isdigit()):
            # redis-py silently falls back to database 0 on anything but a number.
            raise ValueError("the database (the path) must be a number: redis://host:6379/0")
        try:  # redis-py's own reading: the query's typed parameters (db, socket_timeout, ...)
            parse_url(value)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def usable_memory_mb(self) -> float:
        """The budget the workers may fill: the host budget minus the reserve."""
        return max(0.0, self.memory_budget_mb - self.memory_reserve_mb)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = settings_cls.model_config.get("toml_file") or _config_file_from_env()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def _config_file_from_env() -> Path | None:
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else None


class SettingsError(Exception):
    """Settings could not be built; the message names the source and the field."""


def load_settings(*, config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings root. `config_file` wins over AUTOSCALER_CONFIG."""
    from pydantic import ValidationError

    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise TypeError(f"load_settings() got unknown settings {unknown}")
    path = find_config_file(config_file)
    if path is not None:
        _check_config_file(path)
    _check_dotenv()

    class ConfiguredSettings(Settings):
        # pydantic-settings builds its sources from the class, so the file rides on a subclass.
        model_config = SettingsConfigDict(toml_file=path)

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = ConfiguredSettings(**given)
    except ValidationError as exc:
        origin = f"settings (env AUTOSCALER_*, .env{f', {path}' if path else ''})"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise SettingsError(f"{origin}: {problems}") from exc
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise SettingsError(f"{path}: {exc}") from exc
    settings._config_file = path
    settings._origins = _origins(path, given)
    return settings


def find_config_file(explicit: Path | None = None) -> Path | None:
    """--config, else AUTOSCALER_CONFIG, else the first of SEARCH_PATHS that exists."""
    if explicit is not None:
        return explicit
    from_env = _config_file_from_env()
    if from_env is not None:
        return from_env
    return next((path for path in SEARCH_PATHS if path.is_file()), None)


def searched_text() -> str:
    """The places looked in, for messages: `./autoscaler.toml, /etc/...`."""
    return ", ".join(str(p) if p.is_absolute() else f"./{p}" for p in SEARCH_PATHS)


def _origins(path: Path | None, given: dict[str, Any]) -> dict[str, str]:
    """Each field's source, in the order the settings apply them (flags, env, .env, file)."""
    prefix = "autoscaler_"
    environ = {key.lower(): key for key in os.environ}
    dotenv: set[str] = set()
    env_file = Settings.model_config.get("env_file")
    if isinstance(env_file, str) and Path(env_file).is_file():
        dotenv = {key.lower() for key in DotEnvSettingsSource(Settings).env_vars}
    in_file: set[str] = set()
    if path is not None:
        in_file = set(tomllib.loads(path.read_text(encoding="utf-8")))
    origins: dict[str, str] = {}
    for name in Settings.model_fields:
        key = f"{prefix}{name}"
        nested = [k for k in environ if k == key or k.startswith(f"{key}__")]
        if name in given:
            origins[name] = "command line"
        elif nested:
            origins[name] = f"env {environ[nested[0]]}"
        elif key in dotenv or any(k.startswith(f"{key}__") for k in dotenv):
            origins[name] = f".env ({Path(str(env_file)).resolve()})"
        elif name in in_file:
            origins[name] = str(path)
        else:
            origins[name] = DEFAULT_ORIGIN
    return origins


def _check_config_file(path: Path) -> None:
    """The TOML file exists, parses and holds only known settings (a typo fails loudly)."""
    if path.is_dir():
        raise SettingsError(f"{path}: is a directory, not a settings TOML file")
    if not path.is_file():
        raise SettingsError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    unknown = [key for key in data if key not in Settings.model_fields]
    if unknown:
        raise SettingsError("; ".join(f"{path}: {key}: unknown key (typo?)" for key in unknown))


def _check_dotenv() -> None:
    """`.env` may hold any program's keys, but an unknown AUTOSCALER_* one is a typo of ours."""
    env_file = Settings.model_config.get("env_file")
    if not isinstance(env_file, str) or not Path(env_file).is_file():
        return
    prefix = "autoscaler_"
    problems: list[str] = []
    # The source's own reading of the file (case folded as the settings read it).
    for name in DotEnvSettingsSource(Settings).env_vars:
        key = name.lower()
        if not key.startswith(prefix):
            continue
        field = key.removeprefix(prefix).partition("__")[0]
        if field in Settings.model_fields:
            continue
        where = f"{Path(env_file).resolve()}: {name.upper()}"
        if key == CONFIG_ENV.lower():
            problems.append(f"{where}: is read from the environment only (or use --config)")
        else:
            problems.append(f"{where}: unknown setting (typo?)")
    if problems:
        raise SettingsError("; ".join(problems))


# Query parameters that carry a secret: redis-py reads `?password=` (the only way to give a
# unix socket's password); usernames are identities, not secrets, and stay readable.
SECRET_QUERY_PARAMS = frozenset({"password"})


def mask_url(url: str) -> str:
    """The URL with every password (in the user info or the query) replaced by ***.

    Works on the raw text, so the rest of the URL (IPv6 brackets, `unix:///path`,
    encodings, order of parameters) is shown exactly as written. A password may hold an
    unencoded ? or #, so the user info is cut at the last @ before the path, first.
    """
    scheme, slashes, after = url.partition("://")
    head, tail = "", url
    if slashes:
        head, tail = f"{scheme}{slashes}", after
        userinfo, at, _ = after.partition("/")[0].rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.partition(":")[0]
            # `user` holding ? or # means the @ may be the query's: show nothing of it.
            shown = f"{user}:{MASK}" if not set(user) & {"?", "#"} else MASK
            head, tail = f"{head}{shown}@", after[len(userinfo) + 1 :]
    rest, hash_sign, fragment = tail.partition("#")
    path, question, query = rest.partition("?")
    query = "&".join(_mask_param(param) for param in query.split("&"))
    return f"{head}{path}{question}{query}{hash_sign}{fragment}"


def _mask_param(param: str) -> str:
    name, equals, _ = param.partition("=")
    if equals and unquote(name).lower() in SECRET_QUERY_PARAMS:
        return f"{name}={MASK}"
    return param


def effective_settings(settings: Settings) -> dict[str, Any]:
    """Every field with its effective value, secrets masked: what `autoscaler config` prints."""
    shown: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = MASK if value.get_secret_value() else ""
        elif name.endswith("_url") and isinstance(value, str):
            value = mask_url(value)
        elif isinstance(value, Path):
            value = str(value)
        shown[name] = value
    return shown


def describe_fields() -> dict[str, str]:
    """Field name -> description, for `autoscaler config --describe`."""
    return {name: field.description or "" for name, field in Settings.model_fields.items()}
