"""Settings from config.yml, .env and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import CONFIG_FILE_VARIABLE, load_settings

YAML = """\
user_service:
  url: http://127.0.0.1:7003/
  timeout: 7.5
  retries: 5
  deadline: 120
interview_service:
  url: http://127.0.0.1:7004
  backoff_max: 3.0
  deadline: 120
gateway:
  port: 7000
  dashboard_deadline: 10
"""


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder with a config file and no service variables."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yml"
    config.write_text(YAML)
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    for name in ("USER_SERVICE_URL", "INTERVIEW_SERVICE_URL", "USER_SERVICE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


class TestSources:
    """Which source wins for each field."""

    def test_yaml_values_are_loaded(self, config_dir: Path) -> None:
        """Values in the YAML file reach the settings."""
        settings = load_settings()

        assert settings.user_service.timeout == 7.5
        assert settings.user_service.retries == 5
        assert settings.interview_service.backoff_max == 3.0
        assert settings.gateway.port == 7000

    def test_environment_beats_yaml_field_by_field(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An environment variable replaces one YAML field and keeps the others."""
        monkeypatch.setenv("USER_SERVICE_URL", "http://127.0.0.1:8003")

        settings = load_settings()

        assert settings.user_service.url == ("http://127.0.0.1:8003",)
        assert settings.user_service.timeout == 7.5
        assert settings.user_service.retries == 5

    def test_multi_word_field_from_environment(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """USER_SERVICE_BACKOFF_MAX reaches the backoff_max field."""
        monkeypatch.setenv("USER_SERVICE_BACKOFF_MAX", "2.5")

        assert load_settings().user_service.backoff_max == 2.5

    def test_dotenv_file_is_read(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A .env file in the working folder overrides YAML."""
        (config_dir / ".env").write_text("INTERVIEW_SERVICE_TIMEOUT=9\n")

        assert load_settings().interview_service.timeout == 9.0

    def test_environment_beats_dotenv(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A real environment variable wins over the same one in .env."""
        (config_dir / ".env").write_text("INTERVIEW_SERVICE_TIMEOUT=9\n")
        monkeypatch.setenv("INTERVIEW_SERVICE_TIMEOUT", "4")

        assert load_settings().interview_service.timeout == 4.0

    def test_unrelated_user_variable_changes_nothing(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The shell's USER variable is not read as a setting."""
        before = load_settings()
        monkeypatch.setenv("USER", "root")
        monkeypatch.setenv("SERVICE", "x")

        assert load_settings() == before

    def test_defaults_without_yaml(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no file and no variables the documented defaults apply."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv(CONFIG_FILE_VARIABLE, raising=False)
        monkeypatch.delenv("USER_SERVICE_URL", raising=False)
        monkeypatch.delenv("INTERVIEW_SERVICE_URL", raising=False)

        settings = load_settings()

        assert settings.user_service.url == ("http://localhost:3003",)
        assert settings.interview_service.url == ("http://localhost:3004",)
        assert settings.user_service.timeout == 2.0
        assert settings.user_service.deadline == 15.0
        assert settings.user_service.retries == 3
        assert settings.user_service.backoff_initial == 1.0
        assert settings.user_service.backoff_max == 10.0

    def test_section_without_url_keeps_default_url(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A YAML section that sets only a timeout keeps the default URL."""
        monkeypatch.chdir(tmp_path)
        config = tmp_path / "config.yml"
        config.write_text("user_service:\n  timeout: 2\n")
        monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
        monkeypatch.delenv("USER_SERVICE_URL", raising=False)

        settings = load_settings()

        assert settings.user_service.url == ("http://localhost:3003",)
        assert settings.user_service.timeout == 2.0

    def test_trailing_slash_is_removed(self, config_dir: Path) -> None:
        """The base URL is stored without a trailing slash."""
        assert load_settings().user_service.url == ("http://127.0.0.1:7003",)


class TestInvalidValues:
    """Start-up fails with the setting's name."""

    @pytest.mark.parametrize(
        "url",
        ["", "   ", "not a url", "ftp://127.0.0.1/", "http://", "http://h/?q=1"],
    )
    def test_bad_url_names_the_variable(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        """An empty or malformed URL raises ValueError naming USER_SERVICE_URL."""
        monkeypatch.setenv("USER_SERVICE_URL", url)

        with pytest.raises(ValueError, match="USER_SERVICE_URL"):
            load_settings()

    def test_negative_retries_names_the_variable(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A negative retry count is rejected at start-up."""
        monkeypatch.setenv("INTERVIEW_SERVICE_RETRIES", "-1")

        with pytest.raises(ValueError, match="INTERVIEW_SERVICE_RETRIES"):
            load_settings()

    def test_malformed_yaml_fails(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A YAML value of the wrong type names its field."""
        (config_dir / "config.yml").write_text("user_service:\n  timeout: soon\n")

        with pytest.raises(ValueError, match=r"user_service\.timeout"):
            load_settings()


class TestContradictions:
    """Settings that cannot work together fail at start-up with the fix."""

    def test_schedule_beyond_deadline(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Attempts and waits that outlast the deadline name both variables."""
        monkeypatch.setenv("USER_SERVICE_DEADLINE", "20")

        with pytest.raises(ValueError, match="raise USER_SERVICE_DEADLINE to 70"):
            load_settings()

    def test_timeout_beyond_deadline(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A per-attempt timeout longer than the deadline is rejected."""
        monkeypatch.setenv("INTERVIEW_SERVICE_TIMEOUT", "20")
        monkeypatch.setenv("INTERVIEW_SERVICE_DEADLINE", "10")

        with pytest.raises(ValueError, match="lower INTERVIEW_SERVICE_TIMEOUT"):
            load_settings()

    def test_bulkhead_beyond_connection_limit(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bulkhead larger than the per-host connection limit is rejected."""
        monkeypatch.setenv("USER_SERVICE_BULKHEAD_MAX_CONCURRENT", "80")

        with pytest.raises(ValueError, match="CONNECTION_LIMIT_PER_HOST"):
            load_settings()

    def test_bulkheads_beyond_total_limit(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Bulkheads that add up past the pool size are rejected."""
        monkeypatch.setenv("HTTP_CLIENT_CONNECTION_LIMIT", "60")

        with pytest.raises(ValueError, match="HTTP_CLIENT_CONNECTION_LIMIT"):
            load_settings()

    def test_disabled_bulkhead_is_not_checked(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A disabled bulkhead does not count against the pool."""
        monkeypatch.setenv("USER_SERVICE_BULKHEAD_MAX_CONCURRENT", "80")
        monkeypatch.setenv("USER_SERVICE_BULKHEAD_ENABLED", "false")

        assert not load_settings().user_service.bulkhead_enabled


class TestConfigFile:
    """Problems with the YAML file are reported by name."""

    def test_missing_named_file_fails(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A SERVICE_PROXIES_CONFIG that names no file stops start-up."""
        monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(tmp_path / "missing.yml"))

        with pytest.raises(ValueError, match="is not a file"):
            load_settings()

    def test_unknown_key_fails(self, config_dir: Path) -> None:
        """A misspelt key in the file is rejected with its dotted name."""
        (config_dir / "config.yml").write_text("user_service:\n  timeuot: 2\n")

        with pytest.raises(ValueError, match=r"user_service\.timeuot"):
            load_settings()

    def test_invalid_yaml_fails(self, config_dir: Path) -> None:
        """A file that is not YAML is rejected with the file's name."""
        (config_dir / "config.yml").write_text("user_service: [unclosed\n")

        with pytest.raises(ValueError, match="not valid YAML"):
            load_settings()

    def test_unrelated_prefixed_variable_is_ignored(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """GATEWAY_INTERFACE, set by CGI servers, is not a gateway setting."""
        monkeypatch.setenv("GATEWAY_INTERFACE", "CGI/1.1")
        monkeypatch.setenv("USER_SERVICE_COLOUR", "blue")

        assert load_settings().gateway.port == 7000

    def test_credentials_in_url_rejected_unechoed(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A URL with a password is rejected without repeating the password."""
        monkeypatch.setenv("USER_SERVICE_URL", "http://admin:hunter2@127.0.0.1:1")

        with pytest.raises(ValueError, match="auth_token") as caught:
            load_settings()

        assert "hunter2" not in str(caught.value)


class TestMoreContradictions:
    """Settings that break the breaker, the pool or the gateway."""

    def test_break_shorter_than_timeout(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A break shorter than an attempt could count old calls as probes."""
        monkeypatch.setenv("USER_SERVICE_BREAKER_BREAK_DURATION", "1")

        with pytest.raises(ValueError, match="BREAKER_BREAK_DURATION"):
            load_settings()

    def test_services_on_one_host_share_its_limit(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two services on one host and port add their bulkheads together."""
        monkeypatch.setenv("USER_SERVICE_URL", "http://127.0.0.1:9000/users-api")
        monkeypatch.setenv("INTERVIEW_SERVICE_URL", "http://127.0.0.1:9000/iv-api")

        with pytest.raises(ValueError, match="for one host"):
            load_settings()

    def test_dashboard_deadline_below_timeout(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A dashboard deadline shorter than an attempt's timeout is rejected."""
        monkeypatch.setenv("GATEWAY_DASHBOARD_DEADLINE", "1")

        with pytest.raises(ValueError, match="GATEWAY_DASHBOARD_DEADLINE"):
            load_settings()


class TestCacheSettings:
    """The cache section: backend, Redis URL and Redis limits."""

    def test_defaults_keep_cache_in_memory(self, config_dir: Path) -> None:
        """Without settings the cache is in memory and Redis is on loopback."""
        cache = load_settings().cache

        assert cache.backend == "memory"
        assert cache.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
        assert cache.redis_socket_timeout == 0.1
        assert cache.redis_connect_timeout == 0.1
        assert cache.redis_max_connections == 50
        assert cache.redis_backoff == 1.0

    def test_environment_selects_redis(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CACHE_BACKEND and CACHE_REDIS_* variables reach the cache section."""
        monkeypatch.setenv("CACHE_BACKEND", "redis")
        monkeypatch.setenv("CACHE_REDIS_URL", "redis://:hunter2@127.0.0.1:6390/2")
        monkeypatch.setenv("CACHE_REDIS_KEY_PREFIX", "gateway-a:")
        monkeypatch.setenv("CACHE_REDIS_SOCKET_TIMEOUT", "0.05")

        cache = load_settings().cache

        assert cache.backend == "redis"
        assert cache.redis_key_prefix == "gateway-a:"
        assert cache.redis_socket_timeout == 0.05
        assert cache.redis_url_for_logs() == "redis://***@127.0.0.1:6390/2"
        assert "hunter2" not in repr(cache)

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "http://:hunter2@127.0.0.1:6379",
            "redis://:hunter2@",
            "redis://:hunter2@127.0.0.1:0",
            "redis://:hunter2@127.0.0.1:99999",
            "redis://:hunter2@127.0.0.1:6379/db",
            "redis://:hunter2@127.0.0.1:6379/0?socket_timeout=9",
            " redis://:hunter2@127.0.0.1:6379",
        ],
    )
    def test_bad_redis_url_is_rejected_unechoed(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        """An invalid Redis URL names CACHE_REDIS_URL and hides the password."""
        monkeypatch.setenv("CACHE_REDIS_URL", url)

        with pytest.raises(ValueError, match="CACHE_REDIS_URL") as caught:
            load_settings()

        assert "hunter2" not in str(caught.value)

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("CACHE_BACKEND", "memcached"),
            ("CACHE_REDIS_KEY_PREFIX", "has space"),
            ("CACHE_REDIS_SOCKET_TIMEOUT", "0"),
            ("CACHE_REDIS_MAX_CONNECTIONS", "0"),
            ("CACHE_REDIS_BACKOFF", "-1"),
        ],
    )
    def test_bad_cache_value_names_the_variable(
        self,
        config_dir: Path,
        monkeypatch: pytest.MonkeyPatch,
        variable: str,
        value: str,
    ) -> None:
        """Each invalid cache setting is rejected with its variable's name."""
        monkeypatch.setenv(variable, value)

        with pytest.raises(ValueError, match=variable):
            load_settings()


class TestEndpointUrls:
    """A service's url lists one or several endpoints."""

    def test_yaml_list_of_urls(self, config_dir: Path) -> None:
        """A YAML list gives the service several endpoints, in order."""
        config = config_dir / "config.yml"
        config.write_text(
            YAML.replace(
                "  url: http://127.0.0.1:7003/\n",
                "  url:\n    - http://127.0.0.1:7003/\n    - http://127.0.0.1:7013\n",
            )
        )

        settings = load_settings()

        assert settings.user_service.url == (
            "http://127.0.0.1:7003",
            "http://127.0.0.1:7013",
        )

    @pytest.mark.parametrize(
        "value",
        [
            "http://127.0.0.1:8001, http://127.0.0.1:8011/",
            '["http://127.0.0.1:8001", "http://127.0.0.1:8011"]',
        ],
    )
    def test_environment_list_of_urls(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        """USER_SERVICE_URL takes URLs separated by commas, or a JSON list."""
        monkeypatch.setenv("USER_SERVICE_URL", value)

        settings = load_settings()

        assert settings.user_service.url == (
            "http://127.0.0.1:8001",
            "http://127.0.0.1:8011",
        )

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("http://127.0.0.1:8001,", "entry 2: must be an http"),
            ("http://127.0.0.1:8001,ftp://127.0.0.1:8002", "entry 2: must be an http"),
            ("[]", "at least one base URL"),
            ('["http://127.0.0.1:8001", 5]', "a URL or a list of URLs"),
            ("[not json", "not a valid JSON list"),
            ("http://127.0.0.1:80,http://127.0.0.1", "entries 1 and 2"),
            ("http://127.0.0.1:8001/a,http://127.0.0.1:8001/a/", "entries 1 and 2"),
            (
                ",".join(f"http://127.0.0.1:{9000 + n}" for n in range(33)),
                "at most 32 base URLs, got 33",
            ),
        ],
    )
    def test_invalid_lists_rejected(
        self,
        config_dir: Path,
        monkeypatch: pytest.MonkeyPatch,
        value: str,
        message: str,
    ) -> None:
        """Empty entries, duplicates, empty and oversized lists name the variable."""
        monkeypatch.setenv("USER_SERVICE_URL", value)

        with pytest.raises(ValueError, match="USER_SERVICE_URL") as caught:
            load_settings()

        assert message in str(caught.value)

    def test_thirty_two_endpoints_accepted(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The largest list allowed loads."""
        urls = [f"http://127.0.0.1:{9000 + n}" for n in range(32)]
        monkeypatch.setenv("USER_SERVICE_URL", ",".join(urls))

        assert load_settings().user_service.url == tuple(urls)

    def test_credentials_in_second_url_unechoed(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A password in any entry is rejected without being repeated."""
        monkeypatch.setenv(
            "USER_SERVICE_URL", "http://127.0.0.1:1,http://admin:hunter2@127.0.0.1:2"
        )

        with pytest.raises(ValueError, match="entry 2") as caught:
            load_settings()

        assert "hunter2" not in str(caught.value)
        assert "admin" not in str(caught.value)

    def test_ejection_base_beyond_maximum(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A base ejection time above the maximum is rejected."""
        monkeypatch.setenv("USER_SERVICE_OUTLIER_BASE_EJECTION_TIME", "400")

        with pytest.raises(ValueError, match="OUTLIER_MAX_EJECTION_TIME"):
            load_settings()

    def test_shared_endpoint_host_shares_its_limit(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A second endpoint on the other service's host adds to that host's load."""
        monkeypatch.setenv(
            "USER_SERVICE_URL", "http://127.0.0.1:9001,http://127.0.0.1:9000"
        )
        monkeypatch.setenv("INTERVIEW_SERVICE_URL", "http://127.0.0.1:9000")

        with pytest.raises(ValueError, match="for one host"):
            load_settings()
