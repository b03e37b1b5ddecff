"""Learning progress (learningprogress): a student's enrolment in a course, pointing at the
next lesson (CUR-1 bootcamp, TMK-7, CC-8). Booking a lesson of the course advances it."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

# The all-round advanced bootcamp (全项进阶): each lesson is a pair of classes, one with a
# Chinese and one with a foreign teacher.
ADVANCED_BOOTCAMP = "advanced_bootcamp"


class ProgressState(StrEnum):
    active = "active"
    completed = "completed"


class ProgressView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    student_id: int
    course: str
    next_lesson: int
    lessons: int | None
    state: ProgressState
    channel: str
    actor_id: str
    created_at: datetime
    updated_at: datetime


def lesson_name(course: str, lesson: int) -> str:
    """What a class of the course stores as its lesson, e.g. "advanced_bootcamp#3"."""
    return f"{course}#{lesson}"
