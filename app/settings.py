"""Settings: defaults, then config.yml, then .env, then environment variables."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
import yarl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "MAX_ENDPOINTS",
    "CacheSettings",
    "GatewaySettings",
    "HttpClientSettings",
    "ServiceSettings",
    "Settings",
    "load_settings",
]

# Names the YAML file to read in place of ./config.yml.
CONFIG_FILE_VARIABLE = "SERVICE_PROXIES_CONFIG"
DEFAULT_CONFIG_FILE = Path("config.yml")
DEFAULT_URLS = {
    "user_service": "http://localhost:3003",
    "interview_service": "http://localhost:3004",
}
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Database numbers of at most 5 digits; a server has 16 unless configured.
_REDIS_PATH = re.compile(r"/(?:[0-9]{1,5})?")
# Base URLs one service may list; the endpoint picker scans them all per attempt.
MAX_ENDPOINTS = 32


def _normalize_base_urls(value: Any) -> tuple[str, ...]:
    """Return the service's base URLs, normalized, or raise ValueError.

    ``value`` is one URL, a list of URLs, or a string of URLs separated by
    commas, the form that fits one environment variable. A string that starts
    with "[" is read as a JSON list.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                message = (
                    "starts with '[' but is not a valid JSON list; give a URL, "
                    "URLs separated by commas, or a JSON list of URLs"
                )
                raise ValueError(message) from None
        else:
            value = text.split(",")
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) for item in value
    ):
        message = "must be a URL or a list of URLs"
        raise ValueError(message)
    if not value:
        message = "must list at least one base URL"
        raise ValueError(message)
    if len(value) > MAX_ENDPOINTS:
        message = f"must list at most {MAX_ENDPOINTS} base URLs, got {len(value)}"
        raise ValueError(message)
    urls: list[str] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(value):
        try:
            url = _normalize_base_url(item)
        except ValueError as exc:
            if len(value) == 1:
                raise
            message = f"entry {position + 1}: {exc}"
            raise ValueError(message) from None
        key = _endpoint_key(url)
        if key in seen:
            message = (
                f"entries {seen[key] + 1} and {position + 1} name the same base URL "
                f"{url!r}; list each endpoint once"
            )
            raise ValueError(message)
        seen[key] = position
        urls.append(url)
    return tuple(urls)


def _endpoint_key(url: str) -> str:
    """Return the URL with its port always given, so that equal endpoints match."""
    parsed = yarl.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}{parsed.raw_path}"


def _normalize_base_url(value: str) -> str:
    """Return the base URL without a trailing slash, or raise ValueError.

    Messages show the value with any user name, password and query hidden,
    since those may hold credentials.
    """
    redacted_url = _hide_credentials(value)
    if not value.strip():
        message = "must be an http:// or https:// URL, got an empty string"
        raise ValueError(message)
    try:
        url = yarl.URL(value.strip())
        host = url.host
    except (ValueError, TypeError) as exc:
        message = f"must be an http:// or https:// URL, got {redacted_url!r}: {exc}"
        raise ValueError(message.replace(value.strip(), redacted_url)) from None
    if url.scheme not in {"http", "https"} or not host:
        message = (
            f"must be an http:// or https:// URL with a host, got {redacted_url!r}"
        )
        raise ValueError(message)
    if url.user is not None or url.password is not None:
        message = "must not contain a user name or password; set auth_token instead"
        raise ValueError(message)
    if url.query_string or url.fragment:
        message = f"must not have a query or fragment, got {redacted_url!r}"
        raise ValueError(message)
    return str(url).rstrip("/")


def _hide_credentials(value: str) -> str:
    text = value.strip()
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    rest = rest.split("?", 1)[0] + ("?***" if "?" in rest else "")
    return f"{scheme}{separator}{rest}"


class ServiceSettings(BaseModel):
    """Connection, timeout, retry and resilience settings of one upstream service.

    The README's resilience section gives the reason for every default.
    """

    # Validation errors leave out input values, which may include auth_token.
    # Unknown keys are ignored here because environment variables such as
    # GATEWAY_INTERFACE share a section's prefix; config.yml is checked for
    # unknown keys by _StrictYamlSource instead.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    # One base URL or several. NoDecode keeps pydantic-settings from reading
    # USER_SERVICE_URL as JSON, so that "http://a,http://b" reaches the validator.
    url: Annotated[tuple[str, ...], NoDecode]
    timeout: float = Field(default=2.0, gt=0, le=300)
    deadline: float = Field(default=15.0, gt=0, le=3600)

    retries: int = Field(default=3, ge=0, le=10)
    backoff_initial: float = Field(default=1.0, ge=0, le=60)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)
    backoff_max: float = Field(default=10.0, ge=0, le=300)
    jitter: Literal["equal", "full", "none"] = "equal"
    retry_on_429: bool = False
    retry_after_max: float = Field(default=60.0, ge=0, le=3600)

    budget_enabled: bool = True
    budget_ratio: float = Field(default=0.2, ge=0, le=10)
    budget_min_retries: int = Field(default=10, ge=0, le=100000)
    budget_window: float = Field(default=10.0, gt=0, le=3600)

    breaker_enabled: bool = True
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_minimum_calls: int = Field(default=10, ge=1, le=100000)
    breaker_window: float = Field(default=30.0, gt=0, le=3600)
    breaker_break_duration: float = Field(default=15.0, gt=0, le=3600)
    breaker_half_open_probes: int = Field(default=3, ge=1, le=1000)
    breaker_slow_call: float = Field(default=1.0, gt=0, le=3600)

    bulkhead_enabled: bool = True
    bulkhead_max_concurrent: int = Field(default=50, ge=1, le=100000)
    bulkhead_max_queue: int = Field(default=1000, ge=0, le=1000000)

    # Passive outlier detection, which acts only when url lists several endpoints.
    outlier_enabled: bool = True
    outlier_consecutive_failures: int = Field(default=5, ge=1, le=1000)
    outlier_base_ejection_time: float = Field(default=30.0, gt=0, le=3600)
    outlier_max_ejection_time: float = Field(default=300.0, gt=0, le=86400)
    outlier_max_ejection_percent: int = Field(default=50, ge=0, le=100)

    # False turns caching off even when cache_ttl, merged from config.yml and the
    # environment, still names methods.
    cache_enabled: bool = True
    cache_ttl: dict[str, float] = Field(default_factory=dict)
    cache_max_entries: int = Field(default=1000, ge=1, le=10_000_000)
    cache_stale_if_error: float = Field(default=60.0, ge=0, le=86400)

    health_path: str = Field(default="/health", pattern=r"^/[A-Za-z0-9\-._~/]*$")
    health_timeout: float = Field(default=1.0, gt=0, le=60)

    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0, le=1024**3)

    # Sent as "Authorization: Bearer <token>"; SecretStr keeps it out of repr(),
    # str() and model_dump().
    auth_token: SecretStr | None = None
    # Redirects are followed only to the scheme, host and port of ``url``.
    follow_redirects: bool = False
    # One DEBUG line per successful call. Off by default because loguru cannot
    # tell cheaply whether a sink takes DEBUG, so the line costs two Python
    # calls and a dict of fields on every call even with no such sink.
    # Failures, retries and refused attempts are logged either way.
    log_successes: bool = False

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> tuple[str, ...]:
        return _normalize_base_urls(value)

    @field_validator("auth_token")
    @classmethod
    def _check_auth_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        # Visible ASCII only: a space, CR or LF would break the header line.
        if not token or not all("!" <= char <= "~" for char in token):
            message = (
                "must be non-empty visible ASCII without spaces; leave it unset "
                "to send no Authorization header"
            )
            raise ValueError(message)
        return value

    @field_validator("cache_ttl")
    @classmethod
    def _check_cache_ttl(cls, value: dict[str, float]) -> dict[str, float]:
        for method, ttl in value.items():
            if ttl <= 0:
                message = f"time to live of {method} must be > 0 seconds, got {ttl}"
                raise ValueError(message)
        return value

    def retry_waits(self) -> list[float]:
        """Return the longest wait before each retry, jitter included."""
        return [
            min(self.backoff_max, self.backoff_initial * self.backoff_multiplier**n)
            for n in range(self.retries)
        ]

    def worst_case_duration(self) -> float:
        """Return the longest a call can take when every attempt times out."""
        return self.timeout * (self.retries + 1) + sum(self.retry_waits())


class HttpClientSettings(BaseModel):
    """Connection pool and TLS verification of the shared client session."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    connection_limit: int = Field(default=100, ge=1, le=10000)
    connection_limit_per_host: int = Field(default=50, ge=0, le=10000)
    keepalive_timeout: float = Field(default=15.0, gt=0, le=3600)

    # PEM file of the certificate authorities to trust in place of the system's.
    ca_bundle: FilePath | None = None
    # False turns certificate verification off; only for local testing.
    verify_tls: bool = True


class GatewaySettings(BaseModel):
    """Listening address, deadlines and readiness caching of the gateway."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    dashboard_deadline: float = Field(default=5.0, gt=0, le=600)
    optional_part_deadline: float = Field(default=2.0, gt=0, le=600)
    health_cache_seconds: float = Field(default=1.0, ge=0, le=60)


class CacheSettings(BaseModel):
    """Storage of both services' read caches: in this process or in Redis.

    The README's configuration section gives the reason for every default.
    """

    # Validation errors leave out input values, which may include a password.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    backend: Literal["memory", "redis"] = "memory"
    # SecretStr keeps a password in the URL out of repr(), str() and dumps.
    redis_url: SecretStr = SecretStr(DEFAULT_REDIS_URL)
    redis_key_prefix: str = Field(
        default="service-proxies:", pattern=r"^[A-Za-z0-9._:\-]{1,64}$"
    )
    redis_socket_timeout: float = Field(default=0.1, gt=0, le=10)
    redis_connect_timeout: float = Field(default=0.1, gt=0, le=10)
    redis_max_connections: int = Field(default=50, ge=1, le=10000)
    redis_backoff: float = Field(default=1.0, gt=0, le=300)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr) -> SecretStr:
        _check_redis_url(value.get_secret_value())
        return value

    def redis_url_for_logs(self) -> str:
        """Return ``redis_url`` with any user name, password and query hidden."""
        return _hide_credentials(self.redis_url.get_secret_value())


def _check_redis_url(value: str) -> None:
    """Raise ValueError unless ``value`` is a redis:// or rediss:// URL with a host.

    Messages show the value with any user name and password hidden.
    """
    redacted_url = _hide_credentials(value)
    if value != value.strip():
        message = f"must not start or end with spaces, got {redacted_url!r}"
        raise ValueError(message)
    try:
        url = yarl.URL(value)
        host = url.host
        port = url.explicit_port
    except (ValueError, TypeError) as exc:
        message = f"must be a redis:// or rediss:// URL, got {redacted_url!r}: {exc}"
        raise ValueError(message.replace(value, redacted_url)) from None
    if url.scheme not in {"redis", "rediss"} or not host:
        message = (
            f"must be a redis:// or rediss:// URL with a host, such as "
            f"{DEFAULT_REDIS_URL!r}, got {redacted_url!r}"
        )
        raise ValueError(message)
    if port is not None and not 1 <= port <= 65535:
        message = f"must have a port from 1 to 65535, got {redacted_url!r}"
        raise ValueError(message)
    if _REDIS_PATH.fullmatch(url.raw_path or "/") is None:
        message = (
            f"must have no path or a database number as its path, such as /0, "
            f"got {redacted_url!r}"
        )
        raise ValueError(message)
    if url.raw_query_string or url.raw_fragment:
        message = (
            f"must not have a query or fragment, got {redacted_url!r}; set the "
            f"timeouts and the pool size with the cache.redis_* settings"
        )
        raise ValueError(message)


class Settings(BaseSettings):
    """Every setting of the package.

    A nested field is set from the environment by joining the section and the field
    with an underscore: ``USER_SERVICE_URL``, ``INTERVIEW_SERVICE_TIMEOUT``,
    ``GATEWAY_PORT``.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="_",
        # One split only, so USER_SERVICE_BACKOFF_MAX reaches backoff_max.
        env_nested_max_split=1,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    user_service: ServiceSettings
    interview_service: ServiceSettings
    http_client: HttpClientSettings = HttpClientSettings()
    gateway: GatewaySettings = GatewaySettings()
    cache: CacheSettings = CacheSettings()

    @model_validator(mode="before")
    @classmethod
    def _default_urls(cls, data: Any) -> Any:
        # A section given without its url, by YAML or by environment, keeps the
        # default url instead of failing as incomplete.
        if not isinstance(data, dict):
            return data
        for section, url in DEFAULT_URLS.items():
            values = data.setdefault(section, {})
            if isinstance(values, dict):
                values.setdefault("url", url)
        return data

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        problems = [
            *_service_problems("user_service", self.user_service),
            *_service_problems("interview_service", self.interview_service),
            *_pool_problems(self),
            *_gateway_problems(self),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_settings = _StrictYamlSource(settings_cls, _config_file())
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            yaml_settings,
            file_secret_settings,
        )


class _StrictYamlSource(YamlConfigSettingsSource):
    """The YAML source, with file errors and unknown keys reported by name.

    The settings models ignore unknown keys, so that unrelated environment
    variables sharing a prefix do no harm. A key in the file that no setting
    has is a typo, so it is rejected here.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        self._path = path
        try:
            super().__init__(settings_cls, yaml_file=path)
        except yaml.YAMLError as exc:
            message = f"invalid settings: {path} is not valid YAML: {exc}"
            raise ValueError(message) from None
        if not isinstance(self.yaml_data, dict):
            message = f"invalid settings: {path} must hold a mapping of sections"
            raise ValueError(message)
        unknown = _unknown_keys(settings_cls, self.yaml_data)
        if unknown:
            message = (
                f"invalid settings: {path} has unknown keys: {', '.join(unknown)}; "
                f"see config.yml in the repository for the accepted ones"
            )
            raise ValueError(message)


def _config_file() -> Path | None:
    """Return the YAML file to read, or None when the default one is absent.

    Raises:
        ValueError: SERVICE_PROXIES_CONFIG names a file that does not exist.
    """
    named = os.environ.get(CONFIG_FILE_VARIABLE)
    if named is None:
        return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    path = Path(named)
    if not path.is_file():
        message = f"invalid settings: {CONFIG_FILE_VARIABLE}={named} is not a file"
        raise ValueError(message)
    return path


def _unknown_keys(model: type[BaseModel], data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return []
    unknown = []
    for key, value in data.items():
        field = model.model_fields.get(str(key))
        if field is None:
            unknown.append(f"{prefix}{key}")
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            unknown += _unknown_keys(annotation, value, f"{prefix}{key}.")
    return unknown


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, naming the variable to fix when a value is invalid.

    Raises:
        ValueError: a setting is missing or invalid.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe_error(error) for error in exc.errors())
        message = f"invalid settings: {problems}"
        raise ValueError(message) from None


def _service_problems(section: str, service: ServiceSettings) -> list[str]:
    prefix = section.upper()
    problems = []
    if service.timeout > service.deadline:
        problems.append(
            f"{section}.timeout ({service.timeout} s) is longer than "
            f"{section}.deadline ({service.deadline} s): no attempt could use its "
            f"full timeout; lower {prefix}_TIMEOUT or raise {prefix}_DEADLINE"
        )
    worst_case = service.worst_case_duration()
    if service.timeout <= service.deadline < worst_case:
        problems.append(
            f"{section}: {service.retries + 1} attempts of {service.timeout} s plus "
            f"waits of {sum(service.retry_waits()):g} s take {worst_case:g} s, "
            f"beyond {section}.deadline ({service.deadline} s), so the last "
            f"retries could never run; raise {prefix}_DEADLINE to {worst_case:g} "
            f"or lower {prefix}_RETRIES, {prefix}_TIMEOUT or {prefix}_BACKOFF_MAX"
        )
    if service.breaker_enabled and service.breaker_break_duration < service.timeout:
        problems.append(
            f"{section}.breaker_break_duration ({service.breaker_break_duration} s) "
            f"is shorter than {section}.timeout ({service.timeout} s), so calls "
            f"admitted before the circuit opened could count as its probes; raise "
            f"{prefix}_BREAKER_BREAK_DURATION or lower {prefix}_TIMEOUT"
        )
    if service.outlier_base_ejection_time > service.outlier_max_ejection_time:
        problems.append(
            f"{section}.outlier_base_ejection_time "
            f"({service.outlier_base_ejection_time} s) is longer than "
            f"{section}.outlier_max_ejection_time "
            f"({service.outlier_max_ejection_time} s); lower "
            f"{prefix}_OUTLIER_BASE_EJECTION_TIME or raise "
            f"{prefix}_OUTLIER_MAX_EJECTION_TIME"
        )
    if service.backoff_initial > service.backoff_max:
        problems.append(
            f"{section}.backoff_initial ({service.backoff_initial} s) is longer "
            f"than {section}.backoff_max ({service.backoff_max} s); lower "
            f"{prefix}_BACKOFF_INITIAL or raise {prefix}_BACKOFF_MAX"
        )
    return problems


def _pool_problems(settings: Settings) -> list[str]:
    client = settings.http_client
    services = {
        "user_service": settings.user_service,
        "interview_service": settings.interview_service,
    }
    bulkheads = {
        name: service.bulkhead_max_concurrent
        for name, service in services.items()
        if service.bulkhead_enabled
    }
    problems = []
    per_host = client.connection_limit_per_host
    # Services behind one host and port share aiohttp's per-host limit. A
    # service may send its whole bulkhead to any one of its endpoints, for
    # example while the others are ejected.
    by_origin: dict[tuple[str, int | None], list[str]] = {}
    for name in bulkheads:
        origins = set()
        for base_url in services[name].url:
            url = yarl.URL(base_url)
            origins.add((url.host or "", url.port))
        for origin in sorted(origins, key=str):
            by_origin.setdefault(origin, []).append(name)
    for names in by_origin.values():
        size = sum(bulkheads[name] for name in names)
        if per_host and size > per_host:
            fields = " + ".join(f"{name}.bulkhead_max_concurrent" for name in names)
            variables = " or ".join(
                f"{name.upper()}_BULKHEAD_MAX_CONCURRENT" for name in names
            )
            problems.append(
                f"{fields} ({size}) is larger than "
                f"http_client.connection_limit_per_host ({per_host}) for one host, "
                f"so calls would queue in the connector instead of the bulkhead; "
                f"lower {variables} or raise HTTP_CLIENT_CONNECTION_LIMIT_PER_HOST"
            )
    total = sum(bulkheads.values())
    if total > client.connection_limit:
        problems.append(
            f"the bulkheads allow {total} concurrent calls in all, more than "
            f"http_client.connection_limit ({client.connection_limit}); raise "
            f"HTTP_CLIENT_CONNECTION_LIMIT or lower the bulkheads"
        )
    return problems


def _gateway_problems(settings: Settings) -> list[str]:
    deadline = settings.gateway.dashboard_deadline
    longest = max(settings.user_service.timeout, settings.interview_service.timeout)
    if deadline >= longest:
        return []
    return [
        f"gateway.dashboard_deadline ({deadline} s) is shorter than a service "
        f"timeout ({longest} s), so no dashboard call could use its full attempt; "
        f"raise GATEWAY_DASHBOARD_DEADLINE or lower the service timeouts"
    ]


def _describe_error(error: Any) -> str:
    text = str(error["msg"]).removeprefix("Value error, ")
    location = [str(part) for part in error["loc"]]
    if not location:
        return text
    dotted = ".".join(location)
    # Environment variables reach two levels deep: a section and its field.
    variable = "_".join(location[:2]).upper()
    return f"{dotted} (in config.yml, or environment variable {variable}): {text}"
