"""What each class label does to money and to the teacher (FM-3, FM-4, LP-4, CC-7).

A finished class either keeps its payment or gives it back in full; a teacher label also
penalises the class's teacher. Changing a label or undoing a finish moves only the difference.
"""

from domain.words import ClassLabel, PenaltyKind

# Labels whose class gives the student's payment back in full: the student lost the class
# through no fault of theirs.
REFUNDING: frozenset[ClassLabel] = frozenset(
    {ClassLabel.teacher_no_show, ClassLabel.teacher_it_issue, ClassLabel.system_issue}
)

# Labels that penalise the class's teacher, with the penalty's kind.
PENALTIES: dict[ClassLabel, PenaltyKind] = {
    ClassLabel.teacher_no_show: PenaltyKind.teacher_no_show,
    ClassLabel.teacher_it_issue: PenaltyKind.teacher_it_issue,
}


def refunds(label: ClassLabel | None) -> bool:
    """Whether a class with this label (None: not finished) has its payment given back."""
    return label in REFUNDING


def penalty(label: ClassLabel | None) -> PenaltyKind | None:
    """The teacher's penalty a class with this label carries, if any."""
    return PENALTIES.get(label) if label is not None else None
