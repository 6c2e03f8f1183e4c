"""Logs hold no credentials, no bodies and no unmasked e-mail addresses."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from app.proxies import ServiceProxyError
from app.redaction import REDACTED, mask_emails, redact_record
from app.testing import Reply, ScriptedUpstream
from tests.conftest import ProxyFactory
from tests.security.support import (
    USER_JSON,
    capture_logs,
    serve_gateway,
    settings_for,
)

TOKEN = "svc-token-5f3a9c"
CALLER_TOKEN = "caller-token-77d1e"
COOKIE_VALUE = "cookie-value-91b2"
PASSWORD = "hunter2-pass-0c4"
BODY_MARKER = "body-marker-3e8"
EMAIL = "jane.doe@example.com"
# The local part of EMAIL: no log may show it, raw or percent-encoded.
EMAIL_LOCAL = "jane.doe"
SECRETS = [TOKEN, CALLER_TOKEN, COOKIE_VALUE, PASSWORD, BODY_MARKER, EMAIL_LOCAL]

SECRET_BODY = {
    "message": f"token {TOKEN} of {EMAIL} rejected, password {PASSWORD}",
    "marker": BODY_MARKER,
}
CALLER_HEADERS = {
    "Authorization": f"Bearer {CALLER_TOKEN}",
    "Cookie": f"sid={COOKIE_VALUE}",
}


def _run_python(script: str) -> tuple[str, str]:
    """Run a script in a fresh interpreter, so that its loguru set-up stays there."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout, done.stderr


def _record(message: str, **extra: Any) -> Any:
    """Build the parts of a loguru record that the patcher reads."""
    return {"message": message, "extra": extra}


async def _run_secret_calls(upstream: ScriptedUpstream, proxy: Any) -> None:
    """Make calls full of secrets that fail, retry and succeed."""
    encoded = "/users/jane.doe%40example.com"
    upstream.route(encoded, Reply.json(SECRET_BODY, 404))
    upstream.route(
        "/users/exists",
        Reply.json(SECRET_BODY, 503),
        Reply.json({"exists": True}),
    )
    upstream.route("/users", Reply.json(SECRET_BODY, 500))
    upstream.route(f"{encoded}/stats", Reply.text(f"{BODY_MARKER} {EMAIL}"))

    with pytest.raises(ServiceProxyError):
        await proxy.get_user(EMAIL, headers=CALLER_HEADERS)
    assert await proxy.check_user_exists(EMAIL, headers=CALLER_HEADERS)
    with pytest.raises(ServiceProxyError):
        await proxy.post("/users", {"email": EMAIL, "password": PASSWORD})
    with pytest.raises(ServiceProxyError):
        await proxy.get_user_stats(EMAIL, headers=CALLER_HEADERS)


class TestPatcher:
    """redact_record on single records."""

    def test_masks_email_in_message(self) -> None:
        """An e-mail address in the message keeps its first letter and domain."""
        record = _record(f"lookup of {EMAIL} failed")

        redact_record(record)

        assert record["message"] == "lookup of j***@example.com failed"

    def test_masks_encoded_email(self) -> None:
        """An e-mail address with a percent-encoded @ in a path is masked too."""
        assert mask_emails("/users/jane.doe%40example.com") == (
            "/users/j***%40example.com"
        )

    @pytest.mark.parametrize(
        "key",
        [
            "authorization",
            "Authorization",
            "cookie",
            "set_cookie",
            "auth_token",
            "password",
            "passwd",
            "client_secret",
            "api_key",
            "X-Api-Key",
        ],
    )
    def test_redacts_credential_keys(self, key: str) -> None:
        """The value of an extra key named like a credential is replaced."""
        record = _record("x", **{key: "s3cr3t"})

        redact_record(record)

        assert record["extra"][key] == REDACTED

    def test_redacts_nested_headers(self) -> None:
        """Credential keys inside a dict in extra are replaced as well."""
        record = _record("x", headers={"Authorization": "Bearer s3cr3t", "X-Id": "7"})

        redact_record(record)

        assert record["extra"]["headers"] == {"Authorization": REDACTED, "X-Id": "7"}

    def test_masks_email_in_extra(self) -> None:
        """Strings in extra, nested ones included, have their e-mails masked."""
        record = _record("x", path=f"/users/{EMAIL}", ids=[EMAIL, 3])

        redact_record(record)

        assert record["extra"]["path"] == "/users/j***@example.com"
        assert record["extra"]["ids"] == ["j***@example.com", 3]

    def test_leaves_plain_fields(self) -> None:
        """Ids, numbers and other fields pass unchanged."""
        record = _record("GET /users/42 -> 200", service="user-service", status=200)

        redact_record(record)

        assert record["message"] == "GET /users/42 -> 200"
        assert record["extra"] == {"service": "user-service", "status": 200}

    def test_skipped_for_disabled_levels(self) -> None:
        """Loguru does not run a patcher for a level that no sink accepts."""
        script = (
            "from loguru import logger\n"
            "calls = []\n"
            "logger.remove()\n"
            "logger.add(lambda message: None, level='INFO')\n"
            "patched = logger.patch(lambda record: calls.append(record['message']))\n"
            "patched.debug('dropped')\n"
            "patched.info('kept')\n"
            "print(calls)\n"
        )

        stdout, _ = _run_python(script)

        assert stdout.strip() == "['kept']"


class TestProxyLogs:
    """Everything the proxies log at every level, captured at TRACE."""

    async def test_no_secret_in_logs(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Tokens, cookies, passwords, bodies and e-mails stay out of the logs."""
        proxy = make_proxy(upstream.url, auth_token=TOKEN)

        with capture_logs() as lines:
            await _run_secret_calls(upstream, proxy)
        text = "\n".join(lines)
        levels = {json.loads(line)["record"]["level"]["name"] for line in lines}

        for secret in SECRETS:
            assert secret not in text
        assert "j***%40example.com" in text
        assert {"DEBUG", "WARNING", "ERROR"} <= levels

    async def test_upstream_received_secrets(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The secrets of the calls above did reach the wire, so the scan means it."""
        proxy = make_proxy(upstream.url, auth_token=TOKEN)

        await _run_secret_calls(upstream, proxy)
        sent = " ".join(
            f"{request.path} {dict(request.headers)} {request.body!r}"
            for request in upstream.requests
        )

        for secret in [CALLER_TOKEN, COOKIE_VALUE, PASSWORD, TOKEN]:
            assert secret in sent


class TestGatewayLogs:
    """The gateway and the aggregator log without secrets too."""

    async def test_degraded_dashboard_logs(self, upstream: ScriptedUpstream) -> None:
        """Failed optional parts with secret bodies leave no secret in the logs."""
        upstream.route("/users/1", Reply.json(USER_JSON))
        upstream.route("/users/1/interviews", Reply.json(SECRET_BODY, 500))
        upstream.route("/users/1/stats", Reply.json(SECRET_BODY, 400))
        settings = settings_for(upstream.url, auth_token=TOKEN, retries=0)

        with capture_logs() as lines:
            async with (
                serve_gateway(settings) as url,
                aiohttp.ClientSession() as client,
                client.get(f"{url}/api/dashboard/1") as response,
            ):
                status = response.status
        text = "\n".join(lines)
        levels = {json.loads(line)["record"]["level"]["name"] for line in lines}

        assert status == 200
        assert "dashboard part interviews left out" in text
        assert {"INFO", "ERROR"} <= levels
        for secret in SECRETS:
            assert secret not in text


class TestConfigureLogging:
    """configure_logging installs the patcher for every record of the process."""

    def test_application_records_redacted(self) -> None:
        """A plain logger call after configure_logging is redacted in every sink."""
        script = (
            "import sys\n"
            "from loguru import logger\n"
            "from app.logs import configure_logging\n"
            "configure_logging('TRACE')\n"
            "logger.add(sys.stdout, level='TRACE', serialize=True)\n"
            f"logger.bind(password={PASSWORD!r}, cookie={COOKIE_VALUE!r})"
            f".trace('sign-in of {{email}}', email={EMAIL!r})\n"
        )

        stdout, stderr = _run_python(script)
        output = stdout + stderr

        assert "sign-in of j***@example.com" in stderr
        assert "sign-in of j***@example.com" in stdout
        for secret in [PASSWORD, COOKIE_VALUE, EMAIL_LOCAL]:
            assert secret not in output
