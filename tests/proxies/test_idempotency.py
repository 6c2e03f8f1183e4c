"""Retried writes apply once: Idempotency-Key against the sandbox's fault hooks."""

from __future__ import annotations

import pytest

from app.proxies import (
    InterviewServiceProxy,
    ServiceConnectionError,
    UserServiceProxy,
)
from app.sandbox import (
    SandboxFaults,
    create_interview_service_app,
    create_user_service_app,
)
from tests.conftest import ProxyFactory
from tests.helpers import serve_app


class TestIdempotency:
    """A reservation committed before a dropped connection is made once."""

    async def test_idempotency_key_makes_retried_reservation_once(
        self, make_proxy: ProxyFactory
    ) -> None:
        """The first attempt commits and loses its response; the retry replays it."""
        faults = SandboxFaults()
        async with serve_app(create_user_service_app(faults=faults)) as url:
            proxy: UserServiceProxy = make_proxy(url, UserServiceProxy)
            before = await proxy.get_user_stats("1")
            faults.drop_after_commit("reserve_quota")

            reservation = await proxy.reserve_interview_quota("1")
            after = await proxy.get_user_stats("1")

        assert reservation.user_id == "1"
        assert after.quota_used == before.quota_used + 1
        assert faults.pending("reserve_quota") == 0

    async def test_without_retries_the_drop_reaches_the_caller(
        self, make_proxy: ProxyFactory
    ) -> None:
        """With retries off the caller sees the dropped connection, not a result."""
        faults = SandboxFaults()
        async with serve_app(create_user_service_app(faults=faults)) as url:
            proxy: UserServiceProxy = make_proxy(url, UserServiceProxy, retries=0)
            faults.drop_after_commit("reserve_quota")

            with pytest.raises(ServiceConnectionError):
                await proxy.reserve_interview_quota("1")

    async def test_retried_candidate_is_added_once(
        self, make_proxy: ProxyFactory
    ) -> None:
        """add_candidate retried after a dropped response adds one candidate."""
        faults = SandboxFaults()
        async with serve_app(create_interview_service_app(faults=faults)) as url:
            proxy: InterviewServiceProxy = make_proxy(url, InterviewServiceProxy)
            before = await proxy.get_candidates("iv-0001")
            faults.drop_after_commit("add_candidate")

            await proxy.add_candidate(
                "iv-0001",
                {"email": "once@example.com", "firstName": "O", "lastName": "N"},
            )
            after = await proxy.get_candidates("iv-0001")

        assert after.total == before.total + 1

    async def test_retried_release_reports_success(
        self, make_proxy: ProxyFactory
    ) -> None:
        """A release whose 204 was lost is retried and replayed, not a 404."""
        faults = SandboxFaults()
        async with serve_app(create_user_service_app(faults=faults)) as url:
            proxy: UserServiceProxy = make_proxy(url, UserServiceProxy)
            reservation = await proxy.reserve_interview_quota("1")
            before = await proxy.get_user_stats("1")
            faults.drop_after_commit("release_quota")

            await proxy.release_quota("1", reservation.reservation_id)
            after = await proxy.get_user_stats("1")

        assert after.quota_used == before.quota_used - 1
