"""Settings: defaults, then config.yml, then .env, then environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yarl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

__all__ = [
    "CONFIG_FILE_VARIABLE",
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


def _normalize_base_url(value: str) -> str:
    """Return the base URL without a trailing slash, or raise ValueError."""
    if not value.strip():
        message = "must be an http:// or https:// URL, got an empty string"
        raise ValueError(message)
    try:
        url = yarl.URL(value.strip())
    except ValueError as exc:
        message = f"must be an http:// or https:// URL, got {value!r}: {exc}"
        raise ValueError(message) from None
    if url.scheme not in {"http", "https"} or not url.host:
        message = f"must be an http:// or https:// URL with a host, got {value!r}"
        raise ValueError(message)
    if url.query_string or url.fragment:
        message = f"must not have a query or fragment, got {value!r}"
        raise ValueError(message)
    return str(url).rstrip("/")


class ServiceSettings(BaseModel):
    """Connection, timeout and retry settings of one upstream service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    timeout: float = Field(default=5.0, gt=0, le=300)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_initial: float = Field(default=1.0, ge=0, le=60)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)
    backoff_max: float = Field(default=10.0, ge=0, le=300)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0, le=1024**3)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _normalize_base_url(value)


class HttpClientSettings(BaseModel):
    """Connection pool of the shared client session."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_limit: int = Field(default=100, ge=1, le=10000)
    connection_limit_per_host: int = Field(default=50, ge=0, le=10000)
    keepalive_timeout: float = Field(default=15.0, gt=0, le=3600)


class GatewaySettings(BaseModel):
    """Where the gateway listens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)


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
    )

    user_service: ServiceSettings
    interview_service: ServiceSettings
    http_client: HttpClientSettings = HttpClientSettings()
    gateway: GatewaySettings = GatewaySettings()

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = os.environ.get(CONFIG_FILE_VARIABLE, str(DEFAULT_CONFIG_FILE))
        yaml_settings = YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file)
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            yaml_settings,
            file_secret_settings,
        )


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


def _describe_error(error: Any) -> str:
    location = [str(part) for part in error["loc"]]
    dotted = ".".join(location)
    variable = "_".join(location).upper()
    return f"{dotted} (environment variable {variable}): {error['msg']}"
