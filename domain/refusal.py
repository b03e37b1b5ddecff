"""A DomainError in a form that crosses Temporal: from an activity, through a workflow update,
back to the API, which answers with the same JSON error as a direct call would."""

from typing import Any

from pydantic import BaseModel

from domain.errors import DomainError


class Refusal(BaseModel):
    code: str
    status: int
    message: str
    details: dict[str, Any] = {}

    @classmethod
    def of(cls, error: DomainError) -> "Refusal":
        return cls(
            code=error.code, status=error.status, message=error.message, details=error.details
        )
