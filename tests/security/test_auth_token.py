"""The service token is sent on every attempt and shown nowhere else."""

from __future__ import annotations

import json

import aiohttp
import pytest
from pydantic import ValidationError

from app.proxies import ServiceClientError, ServiceProxyError, ServiceServerError
from app.settings import ServiceSettings, Settings, load_settings
from app.testing import Reply, ScriptedUpstream
from tests.conftest import ProxyFactory
from tests.security.support import capture_logs, serve_gateway, settings_for

TOKEN = "svc-token-8d2f61"
BEARER = f"Bearer {TOKEN}"
ECHO_BODY = {"message": f"token {TOKEN} is not valid here", "token": TOKEN}


class TestHeader:
    """What the upstream receives."""

    async def test_sent_on_every_attempt(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Each retry carries the bearer token."""
        upstream.script(
            Reply.json({"message": "busy"}, 503),
            Reply.json({"message": "busy"}, 503),
            Reply.json({"ok": True}),
        )
        proxy = make_proxy(upstream.url, auth_token=TOKEN)

        await proxy.get("/x")

        assert upstream.hits == 3
        for request in upstream.requests:
            assert request.headers["authorization"] == BEARER

    async def test_caller_header_wins(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A caller's own Authorization header, in any case, replaces the token."""
        proxy = make_proxy(upstream.url, auth_token=TOKEN)

        await proxy.get("/x", headers={"authorization": "Bearer caller"})

        assert upstream.requests[0].headers["authorization"] == "Bearer caller"

    async def test_absent_without_setting(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Without auth_token no Authorization header is sent."""
        proxy = make_proxy(upstream.url)

        await proxy.get("/x")

        assert "authorization" not in upstream.requests[0].headers

    async def test_sent_on_same_origin_redirect(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A followed redirect to the service's own origin keeps the token."""
        upstream.route("/a", Reply(status=307, headers={"Location": "/b"}))
        proxy = make_proxy(upstream.url, auth_token=TOKEN, follow_redirects=True)

        await proxy.get("/a")

        assert upstream.requests[1].headers["authorization"] == BEARER

    async def test_sent_on_health_probe(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The readiness probe of the service authenticates too."""
        proxy = make_proxy(upstream.url, auth_token=TOKEN)

        await proxy.check_health()

        assert upstream.requests[0].headers["authorization"] == BEARER


class TestSettings:
    """The token in settings and their representations."""

    def test_read_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """USER_SERVICE_AUTH_TOKEN sets the user-service token."""
        monkeypatch.setenv("USER_SERVICE_AUTH_TOKEN", TOKEN)

        settings = load_settings()
        token = settings.user_service.auth_token

        assert token is not None
        assert token.get_secret_value() == TOKEN
        assert settings.interview_service.auth_token is None

    def test_hidden_in_representations(self, make_proxy: ProxyFactory) -> None:
        """repr, str, model_dump and JSON of the settings and the proxy hide it."""
        settings = settings_for("http://127.0.0.1:1", auth_token=TOKEN)
        proxy = make_proxy("http://127.0.0.1:1", auth_token=TOKEN)

        representations = [
            repr(settings),
            str(settings),
            str(settings.model_dump()),
            settings.model_dump_json(),
            repr(settings.user_service),
            repr(proxy),
            str(proxy),
        ]

        for text in representations:
            assert TOKEN not in text

    @pytest.mark.parametrize("bad", ["", "two words", "line\r\nX-Evil: 1", "é"])
    def test_invalid_token_not_echoed(self, bad: str) -> None:
        """An invalid token is rejected without showing its value."""
        secret = f"{bad}-{TOKEN}" if bad else bad

        with pytest.raises(ValidationError) as caught:
            ServiceSettings(url="http://127.0.0.1:1", auth_token=secret)

        assert "auth_token" in str(caught.value)
        assert TOKEN not in str(caught.value)

    def test_invalid_token_not_echoed_by_loader(self) -> None:
        """load_settings names the variable to fix but not the value."""
        with pytest.raises(ValueError, match="USER_SERVICE_AUTH_TOKEN") as caught:
            load_settings(user_service={"auth_token": f"a b {TOKEN}"})

        assert TOKEN not in str(caught.value)

    def test_nested_settings_hide_input(self) -> None:
        """A validation error of the whole Settings leaves input values out."""
        with pytest.raises(ValidationError) as caught:
            Settings(user_service={"auth_token": f"a b {TOKEN}"})

        assert TOKEN not in str(caught.value)


class TestErrors:
    """Errors of calls made with a token."""

    @pytest.mark.parametrize(
        ("status", "error"), [(401, ServiceClientError), (500, ServiceServerError)]
    )
    async def test_hidden_in_errors(
        self,
        status: int,
        error: type[ServiceProxyError],
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """An upstream that echoes the token gets it replaced in details."""
        upstream.script(Reply.json(ECHO_BODY, status))
        proxy = make_proxy(upstream.url, auth_token=TOKEN, retries=0)

        with pytest.raises(error) as caught:
            await proxy.get("/x")

        assert TOKEN not in str(caught.value)
        assert TOKEN not in repr(caught.value)
        assert TOKEN not in str(caught.value.details)
        assert caught.value.details["token"] == "[REDACTED]"

    async def test_hidden_in_text_error(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A non-JSON error page that echoes the token loses it too."""
        upstream.script(Reply.text(f"<h1>denied</h1> Authorization: {BEARER}", 403))
        proxy = make_proxy(upstream.url, auth_token=TOKEN, retries=0)

        with pytest.raises(ServiceClientError) as caught:
            await proxy.get("/x")

        assert TOKEN not in str(caught.value.details)

    @pytest.mark.parametrize("token", ["abc/def+ghi==", 'tok"quoted', "tok\\slash"])
    async def test_hidden_when_escaped_in_json(
        self, token: str, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A token the upstream echoes with JSON escapes is still replaced."""
        escaped = json.dumps(token).replace("/", "\\/")
        body = '{"message": "invalid token ' + escaped[1:-1] + '"}'
        upstream.script(Reply.text(body, 401, content_type="application/json"))
        proxy = make_proxy(upstream.url, auth_token=token, retries=0)

        with pytest.raises(ServiceClientError) as caught:
            await proxy.get("/x")

        assert token not in str(caught.value)
        assert token not in str(caught.value.details)


class TestLogsAndHealth:
    """Logs at TRACE and the gateway's readiness response."""

    async def test_hidden_in_logs(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Successful, retried and failed calls log nothing of the token."""
        upstream.script(
            Reply.json(ECHO_BODY, 503),
            Reply.json({"ok": True}),
            Reply.json(ECHO_BODY, 401),
        )
        proxy = make_proxy(upstream.url, auth_token=TOKEN)

        with capture_logs() as lines:
            await proxy.get("/x")
            with pytest.raises(ServiceClientError):
                await proxy.get("/x")

        assert lines
        assert TOKEN not in "\n".join(lines)

    async def test_hidden_in_readiness(self, upstream: ScriptedUpstream) -> None:
        """/health/ready shows each upstream's state but not the token."""
        upstream.script(Reply.json(ECHO_BODY, 401))
        settings = settings_for(upstream.url, auth_token=TOKEN)

        with capture_logs() as lines:
            async with (
                serve_gateway(settings) as url,
                aiohttp.ClientSession() as client,
                client.get(f"{url}/health/ready") as response,
            ):
                body = await response.text()

        assert response.status == 503
        assert "user-service" in body
        assert TOKEN not in body
        assert TOKEN not in "\n".join(lines)
        assert upstream.requests[0].headers["authorization"] == BEARER
