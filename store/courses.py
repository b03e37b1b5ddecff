"""Starting a course (开课, H5-6, LP-5): a student's learning progress in a course named after
its course type (`special`, `major`). A special-course class (H5-3) is booked only once the
student's special course has started: `409 course_not_started` otherwise, in both booking paths
(`classes.book_class`, `classes.BOOK_AT_ONCE`) and in class requests. A major course may be
started too (its progress is recorded), but major classes do not wait for it.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import CourseNotStarted
from domain.words import CourseType
from store.models import LearningProgress

# The course types whose classes wait for the student's course to start.
STARTED_FIRST = frozenset({CourseType.special})

# BOOK_AT_ONCE's condition on the student ($1) and course type ($3), as `check_started`.
STARTED_SQL = """($3 <> 'special' OR EXISTS (
        SELECT 1 FROM learning_progress AS lp WHERE lp.student_id = $1 AND lp.course = $3))"""


async def check_started(session: AsyncSession, student_id: int, course_type: CourseType) -> None:
    """CourseNotStarted for a special class of a student whose special course has not started."""
    if course_type not in STARTED_FIRST:
        return
    started = await session.scalar(
        select(LearningProgress.id).where(
            LearningProgress.student_id == student_id,
            LearningProgress.course == course_type.value,
        )
    )
    if started is None:
        raise CourseNotStarted(
            f"the student's {course_type.value} course has not started",
            student_id=student_id,
            course_type=course_type.value,
        )
