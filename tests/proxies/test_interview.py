"""InterviewServiceProxy against the sandbox interview-service over loopback HTTP."""

from __future__ import annotations

import pytest

from app.models import InterviewCreate, InterviewSettings
from app.proxies import InterviewServiceProxy, ServiceClientError
from tests.conftest import ProxyFactory
from tests.helpers import Sandbox


@pytest.fixture
def interviews(make_proxy: ProxyFactory, sandbox: Sandbox) -> InterviewServiceProxy:
    """Build an interview-service proxy aimed at the sandbox."""
    proxy: InterviewServiceProxy = make_proxy(
        sandbox.interview_url, InterviewServiceProxy
    )
    return proxy


async def new_interview(interviews: InterviewServiceProxy, title: str) -> str:
    """Create a draft interview for user 1 and return its id."""
    created = await interviews.create_interview({"userId": "1", "title": title})
    return created.id


class TestInterviews:
    """Creating, reading, changing and deleting interviews."""

    async def test_create_interview(self, interviews: InterviewServiceProxy) -> None:
        """create_interview returns a draft with the given settings."""
        request = InterviewCreate(
            user_id="1",
            title="Senior Developer Interview",
            settings=InterviewSettings(
                duration=3600,
                difficulty="hard",
                record_video=True,
                record_audio=True,
                allow_retakes=False,
            ),
        )

        interview = await interviews.create_interview(request)

        assert interview.status == "draft"
        assert interview.title == "Senior Developer Interview"
        assert interview.settings.difficulty == "hard"

    async def test_create_invalid_interview_raises_422(
        self, interviews: InterviewServiceProxy
    ) -> None:
        """A body the upstream rejects gives ServiceClientError 422."""
        with pytest.raises(ServiceClientError) as caught:
            await interviews.post("/interviews", {"title": ""})

        assert caught.value.status_code == 422

    async def test_get_interview(self, interviews: InterviewServiceProxy) -> None:
        """get_interview returns the interview with that id."""
        interview = await interviews.get_interview("iv-0001")

        assert interview.id == "iv-0001"

    async def test_get_user_interviews_limit_and_status(
        self, interviews: InterviewServiceProxy
    ) -> None:
        """get_user_interviews honours limit and status and counts every match."""
        listed = await interviews.get_user_interviews("1", limit=2, status="active")

        assert len(listed.interviews) <= 2
        assert {item.status for item in listed.interviews} <= {"active"}
        assert listed.total >= len(listed.interviews)

    async def test_update_interview(self, interviews: InterviewServiceProxy) -> None:
        """update_interview changes the title."""
        interview_id = await new_interview(interviews, "Old title")

        updated = await interviews.update_interview(interview_id, {"title": "New"})

        assert updated.title == "New"

    async def test_delete_interview(self, interviews: InterviewServiceProxy) -> None:
        """A deleted interview is gone."""
        interview_id = await new_interview(interviews, "Short-lived")

        await interviews.delete_interview(interview_id)

        with pytest.raises(ServiceClientError) as caught:
            await interviews.get_interview(interview_id)
        assert caught.value.status_code == 404


class TestCandidates:
    """Candidates and stats."""

    async def test_add_and_list_candidates(
        self, interviews: InterviewServiceProxy
    ) -> None:
        """An added candidate shows up in the list."""
        interview_id = await new_interview(interviews, "Backend")

        candidate = await interviews.add_candidate(
            interview_id,
            {
                "email": "candidate@example.com",
                "firstName": "John",
                "lastName": "Doe",
            },
        )
        listed = await interviews.get_candidates(interview_id)

        assert candidate.status == "invited"
        assert [item.id for item in listed.candidates] == [candidate.id]

    async def test_duplicate_candidate_raises_409(
        self, interviews: InterviewServiceProxy
    ) -> None:
        """The same e-mail twice in one interview gives 409."""
        interview_id = await new_interview(interviews, "Backend")
        person = {"email": "twice@example.com", "firstName": "A", "lastName": "B"}
        await interviews.add_candidate(interview_id, person)

        with pytest.raises(ServiceClientError) as caught:
            await interviews.add_candidate(interview_id, person)

        assert caught.value.status_code == 409

    async def test_get_interview_stats(self, interviews: InterviewServiceProxy) -> None:
        """Interview stats count the candidates."""
        listed = await interviews.get_candidates("iv-0001")

        stats = await interviews.get_interview_stats("iv-0001")

        assert stats.interview_id == "iv-0001"
        assert stats.candidates_total == listed.total

    async def test_get_user_interview_stats(
        self, interviews: InterviewServiceProxy
    ) -> None:
        """User interview stats count interviews by status."""
        listed = await interviews.get_user_interviews("1", limit=100)

        stats = await interviews.get_user_interview_stats("1")

        by_status = stats.interviews_by_status
        counted = by_status.draft + by_status.active + by_status.paused
        assert stats.interviews_total == listed.total
        assert counted + by_status.archived == listed.total


class TestStatusChanges:
    """publish, pause and archive."""

    async def test_publish_pause_archive(
        self, interviews: InterviewServiceProxy
    ) -> None:
        """A draft goes active, then paused, then archived."""
        interview_id = await new_interview(interviews, "Lifecycle")

        published = await interviews.publish_interview(interview_id)
        paused = await interviews.pause_interview(interview_id)
        archived = await interviews.archive_interview(interview_id)

        assert published.status == "active"
        assert published.published_at is not None
        assert paused.status == "paused"
        assert archived.status == "archived"

    async def test_publish_archived_raises_409(
        self, interviews: InterviewServiceProxy
    ) -> None:
        """Publishing an archived interview gives 409."""
        interview_id = await new_interview(interviews, "Archived")
        await interviews.archive_interview(interview_id)

        with pytest.raises(ServiceClientError) as caught:
            await interviews.publish_interview(interview_id)

        assert caught.value.status_code == 409
