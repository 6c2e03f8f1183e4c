"""Sandbox servers that stand in for user-service and interview-service."""

from app.sandbox.data import seeded_user_ids
from app.sandbox.faults import SandboxFaults
from app.sandbox.interview_service import create_interview_service_app
from app.sandbox.server import run_sandbox
from app.sandbox.user_service import create_user_service_app

__all__ = [
    "SandboxFaults",
    "create_interview_service_app",
    "create_user_service_app",
    "run_sandbox",
    "seeded_user_ids",
]
