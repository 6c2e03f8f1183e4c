"""UserServiceProxy against the sandbox user-service over loopback HTTP."""

from __future__ import annotations

import pytest

from app.models import UserProfileUpdate
from app.proxies import ServiceClientError, UserServiceProxy
from tests.conftest import ProxyFactory
from tests.helpers import Sandbox

EXHAUSTED_USER = "8"


@pytest.fixture
def users(make_proxy: ProxyFactory, sandbox: Sandbox) -> UserServiceProxy:
    """Build a user-service proxy aimed at the sandbox."""
    proxy: UserServiceProxy = make_proxy(sandbox.user_url, UserServiceProxy)
    return proxy


class TestReads:
    """Read-only calls."""

    async def test_get_user(self, users: UserServiceProxy) -> None:
        """get_user returns the typed user."""
        user = await users.get_user("1")

        assert user.id == "1"
        assert "@" in user.email
        assert user.first_name

    async def test_get_unknown_user_raises_404(self, users: UserServiceProxy) -> None:
        """An unknown id raises ServiceClientError with the upstream message."""
        with pytest.raises(ServiceClientError) as caught:
            await users.get_user("404404")

        assert caught.value.status_code == 404
        assert "message" in caught.value.details

    async def test_get_user_profile(self, users: UserServiceProxy) -> None:
        """get_user_profile returns the profile of that user."""
        profile = await users.get_user_profile("1")

        assert profile.user_id == "1"

    async def test_get_user_stats(self, users: UserServiceProxy) -> None:
        """get_user_stats returns counters of that user."""
        stats = await users.get_user_stats("1")

        assert stats.user_id == "1"
        assert stats.quota_used <= stats.quota_limit

    async def test_check_user_exists(self, users: UserServiceProxy) -> None:
        """A seeded e-mail exists, in any case; an unknown one does not."""
        email = (await users.get_user("3")).email

        assert await users.check_user_exists(email)
        assert await users.check_user_exists(email.upper())
        assert not await users.check_user_exists("nobody@nowhere.example")

    async def test_list_users_pages(self, users: UserServiceProxy) -> None:
        """list_users returns one page and the total count."""
        page = await users.list_users(page=2, limit=20)

        assert page.page == 2
        assert page.limit == 20
        assert len(page.users) == 20
        assert page.total >= 50

    async def test_list_users_search(self, users: UserServiceProxy) -> None:
        """A search string narrows the list to matching users."""
        user = await users.get_user("5")

        page = await users.list_users(search=user.last_name.lower())

        assert user.id in {found.id for found in page.users}
        assert page.total == len(page.users) or page.total > page.limit


class TestWrites:
    """Calls that change state."""

    async def test_update_user_profile(self, users: UserServiceProxy) -> None:
        """update_user_profile changes only the fields it sets."""
        before = await users.get_user_profile("1")

        after = await users.update_user_profile("1", {"bio": "New bio"})

        assert after.bio == "New bio"
        assert after.company == before.company

    async def test_update_user_profile_with_model(
        self, users: UserServiceProxy
    ) -> None:
        """A UserProfileUpdate model is accepted as well as a mapping."""
        after = await users.update_user_profile(
            "1", UserProfileUpdate(position="Engineering Manager")
        )

        assert after.position == "Engineering Manager"

    async def test_reserve_and_release_quota(self, users: UserServiceProxy) -> None:
        """A reservation raises quota use by one; releasing it lowers it again."""
        before = await users.get_user_stats("1")

        reservation = await users.reserve_interview_quota("1")
        during = await users.get_user_stats("1")
        await users.release_quota("1", reservation.reservation_id)
        after = await users.get_user_stats("1")

        assert reservation.user_id == "1"
        assert during.quota_used == before.quota_used + 1
        assert after.quota_used == before.quota_used

    async def test_reserve_exhausted_quota_raises_409(
        self, users: UserServiceProxy
    ) -> None:
        """A user with no quota left gets ServiceClientError 409, sent once."""
        with pytest.raises(ServiceClientError) as caught:
            await users.reserve_interview_quota(EXHAUSTED_USER)

        assert caught.value.status_code == 409

    async def test_release_unknown_reservation_raises_404(
        self, users: UserServiceProxy
    ) -> None:
        """Releasing a reservation that does not exist raises 404."""
        with pytest.raises(ServiceClientError) as caught:
            await users.release_quota("1", "res-missing")

        assert caught.value.status_code == 404

    async def test_same_idempotency_key_reserves_once(
        self, users: UserServiceProxy
    ) -> None:
        """Two calls with one caller-chosen key make a single reservation."""
        before = await users.get_user_stats("2")
        key = {"Idempotency-Key": "reserve-user-2-once"}

        first = await users.reserve_interview_quota("2", headers=key)
        second = await users.reserve_interview_quota("2", headers=key)
        after = await users.get_user_stats("2")

        assert first.reservation_id == second.reservation_id
        assert after.quota_used == before.quota_used + 1
