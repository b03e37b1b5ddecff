"""Weekly booking runs, set-based: auto-booking (自动约, LP-1, SD-6) and the exclusive-teacher
booking (SD-1) of the following Monday–Sunday.

A run fixes its students and their order when it starts. The order is fair: a per-week
pseudo-random permutation (md5 of week and student id), so nobody is always first or always
last. It books in rounds: every student's first wish, then every student's second wish, and so
on, so nobody's third class comes before anybody's first. Each round goes in chunks of students,
one transaction each (the worker splits a chunk by start into parts booked side by side, each
in its own transaction, with the same outcome): the candidate slots are locked with FOR UPDATE
SKIP LOCKED (a slot a concurrent booking holds is skipped, never waited for), assigned in the
fair order (preferred teachers in their order, then, if any teacher will do, the free teacher
of the course type with the fewest classes that week, so such wishes spread across teachers),
then taken, the classes inserted, the credits debited under the balance guard and the ledger
and audit rows written, all in a few statements. A student never goes past their balance, and
one already busy at a wished time keeps what they have.
"""

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.auto_booking import (
    BadRule,
    BookChunk,
    ChunkOutcome,
    ResultView,
    RuleView,
    RunKind,
    RunRequest,
    RunState,
    RunView,
    Wish,
)
from domain.channels import Actor
from domain.errors import DinoHomeWindowOpen, NoExclusiveTeacher, NotFound, OpenClassBySeat
from domain.rules import BookingRules, check_student_takes, is_one_on_one
from domain.weekly import WEEK, Weekday, at, dino_home_window, is_monday, next_week, on_half_hour
from domain.words import CourseType
from store import audit
from store.db import get_or_404
from store.models import BookingResult, BookingRule, BookingRun, BookingWish, Student
from store.people import get_student, get_teacher


async def save_rule(
    session: AsyncSession,
    *,
    student_id: int,
    kind: str,
    wishes: list[Wish],
    teacher_ids: list[int],
    any_teacher: bool,
    course_type: CourseType,
    active: bool,
    actor: Actor,
    now: datetime,
) -> RuleView:
    """LP-1: a student's rule, replacing the one of that kind.

    One INSERT ... ON CONFLICT DO UPDATE: saves at once (even a student's first) take turns on
    the rule's row instead of colliding on its key, and the last one wins, wishes and all."""
    student = await get_student(session, student_id)
    check_student_takes(student.id, student.level, course_type)
    if len(set(wishes)) != len(wishes):
        raise BadRule("each wished time once", field="wishes")
    for wish in wishes:
        if not on_half_hour(wish.start):
            raise BadRule("a wished time starts on :00 or :30", start=wish.start.isoformat())
    if len(set(teacher_ids)) != len(teacher_ids):
        raise BadRule("each preferred teacher once", field="teacher_ids")
    for teacher_id in teacher_ids:
        teacher = await get_teacher(session, teacher_id)
        if course_type.value not in teacher.course_types:
            raise BadRule(
                "a preferred teacher does not teach the course type",
                teacher_id=teacher_id,
                course_type=course_type.value,
            )
    if not teacher_ids and not any_teacher:
        raise BadRule("name preferred teachers, or let any teacher do", field="teacher_ids")
    rule = {
        "teacher_ids": teacher_ids,
        "any_teacher": any_teacher,
        "course_type": course_type,
        "active": active,
        "channel": actor.channel.value,
        "actor_id": actor.id,
        "updated_at": now,
    }
    await session.execute(
        upsert(BookingRule)
        .values(student_id=student_id, kind=kind, **rule)
        .on_conflict_do_update(index_elements=[BookingRule.student_id, BookingRule.kind], set_=rule)
    )
    await session.execute(
        delete(BookingWish).where(BookingWish.student_id == student_id, BookingWish.kind == kind)
    )
    session.add_all(
        BookingWish(
            student_id=student_id,
            kind=kind,
            position=i,
            weekday=wish.weekday.number,
            start_time=wish.start,
        )
        for i, wish in enumerate(wishes, start=1)
    )
    await session.flush()
    return await get_rule(session, student_id, kind)


async def get_rule(session: AsyncSession, student_id: int, kind: str) -> RuleView:
    await get_student(session, student_id)
    rule = await session.get(BookingRule, (student_id, kind))
    if rule is None:
        raise NotFound(f"{kind}_rule", student_id)
    wishes = await session.scalars(
        select(BookingWish)
        .where(BookingWish.student_id == student_id, BookingWish.kind == kind)
        .order_by(BookingWish.position)
    )
    return RuleView(
        student_id=student_id,
        kind=kind,
        wishes=[Wish(weekday=list(Weekday)[w.weekday], start=w.start_time) for w in wishes],
        teacher_ids=list(rule.teacher_ids),
        any_teacher=rule.any_teacher,
        course_type=rule.course_type,
        active=rule.active,
        updated_at=rule.updated_at,
    )


async def set_exclusive_teacher(
    session: AsyncSession,
    *,
    student_id: int,
    teacher_id: int,
    wishes: list[Wish],
    course_type: CourseType,
    actor: Actor,
    now: datetime,
) -> RuleView:
    """SD-1 / H5-7: the student's exclusive teacher and weekly pattern with them."""
    student = await get_student(session, student_id)
    await get_teacher(session, teacher_id)
    student.exclusive_teacher_id = teacher_id
    return await save_rule(
        session,
        student_id=student_id,
        kind="exclusive",
        wishes=wishes,
        teacher_ids=[teacher_id],
        any_teacher=False,
        course_type=course_type,
        active=True,
        actor=actor,
        now=now,
    )


async def next_run_id(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.nextval(func.pg_get_serial_sequence("booking_runs", "id")))
        )
        or 0
    )


async def check_run(
    session: AsyncSession, request: RunRequest, now: datetime, rules: BookingRules
) -> date:
    """The week the run books (default: the next one), or the refusal."""
    week = request.week or next_week(now, rules.business_time_zone)
    if not is_monday(week):
        raise BadRule("week is a Monday", week=week.isoformat())
    if not next_week(now, rules.business_time_zone) - WEEK <= week:
        raise BadRule("the week has passed", week=week.isoformat())
    opens, closes = dino_home_window(now, rules)
    if request.kind is RunKind.auto and week == next_week(now, rules.business_time_zone):
        if opens <= now < closes:
            raise DinoHomeWindowOpen(
                "next week's auto-booking runs once the dino-home window has closed",
                week=week.isoformat(),
                window_closes_at=closes.isoformat(),
            )
    if request.student_id is not None:
        student = await get_student(session, request.student_id)
        if request.kind is not RunKind.auto and student.exclusive_teacher_id is None:
            raise NoExclusiveTeacher("the student has no exclusive teacher", student_id=student.id)
        if await session.get(BookingRule, (student.id, request.kind.rule_kind)) is None:
            raise NotFound(f"{request.kind.rule_kind}_rule", student.id)
    return week


async def start_run(
    session: AsyncSession,
    request: RunRequest,
    *,
    flow_id: str,
    now: datetime,
    rules: BookingRules,
) -> RunView:
    """Record the run and fix its students in the fair order."""
    week = await check_run(session, request, now, rules)
    run_id = request.run_id or await next_run_id(session)
    run = BookingRun(
        id=run_id,
        kind=request.kind.value,
        week=week,
        student_id=request.student_id,
        state=RunState.running.value,
        students=0,
        rounds=0,
        booked=0,
        failed=0,
        flow_id=flow_id,
        channel=request.actor.channel.value,
        actor_id=request.actor.id,
        started_at=now,
    )
    session.add(run)
    await session.flush()
    level = {RunKind.exclusive: "AND s.level <> 7", RunKind.exclusive_l7: "AND s.level = 7"}
    one = "AND r.student_id = :student" if request.student_id is not None else ""
    exclusive = "AND s.exclusive_teacher_id IS NOT NULL" if request.kind is not RunKind.auto else ""
    params = {"run": run_id, "kind": request.kind.rule_kind, "week": week.isoformat()}
    if request.student_id is not None:
        params["student"] = request.student_id
    await session.execute(
        text(
            f"""
            INSERT INTO booking_run_students (run_id, position, student_id)
            SELECT :run,
                   row_number() OVER (ORDER BY md5(CAST(:week AS text) || ':' || r.student_id))
                   - 1,
                   r.student_id
            FROM booking_rules r JOIN students s ON s.id = r.student_id
            WHERE r.kind = :kind AND r.active {level.get(request.kind, "")} {one} {exclusive}
            """
        ),
        params,
    )
    counts = (
        await session.execute(
            text(
                """
                SELECT count(DISTINCT q.student_id), coalesce(max(w.position), 0)
                FROM booking_run_students q
                LEFT JOIN booking_wishes w ON w.student_id = q.student_id AND w.kind = :kind
                WHERE q.run_id = :run
                """
            ),
            {"run": run_id, "kind": request.kind.rule_kind},
        )
    ).one()
    run.students, run.rounds = int(counts[0]), int(counts[1])
    return RunView.model_validate(run)


@dataclass
class _Wish:
    position: int
    student_id: int
    course_type: str
    any_teacher: bool
    teacher_ids: list[int]
    exclusive_teacher_id: int | None
    start_at: datetime
    busy: bool
    balance: int
    slot: tuple[int, int] | None = None  # (timeslot id, teacher id)
    reason: str | None = None
    class_id: int | None = None


_WISHES = """
SELECT q.position, q.student_id, r.course_type, r.any_teacher,
       CASE WHEN :rule_kind = 'auto' THEN r.teacher_ids
            ELSE ARRAY[s.exclusive_teacher_id]::bigint[] END AS teacher_ids,
       s.exclusive_teacher_id,
       ((CAST(:week AS date) + w.weekday) + w.start_time) AT TIME ZONE :zone AS start_at,
       EXISTS (SELECT 1 FROM classes c
               WHERE c.student_id = q.student_id AND c.state <> 'cancelled'
                 AND c.start_at = ((CAST(:week AS date) + w.weekday) + w.start_time)
                                  AT TIME ZONE :zone) AS busy,
       coalesce((SELECT a.balance FROM accounts a
                 WHERE a.student_id = q.student_id AND a.asset = 'credit'
                   AND a.key = r.course_type), 0) AS balance
FROM booking_run_students q
JOIN students s ON s.id = q.student_id
JOIN booking_rules r ON r.student_id = q.student_id AND r.kind = :rule_kind
JOIN booking_wishes w ON w.student_id = q.student_id AND w.kind = :rule_kind
                     AND w.position = :round
WHERE q.run_id = :run AND q.position >= :first AND q.position < :last
  AND mod(CAST(extract(epoch FROM ((CAST(:week AS date) + w.weekday) + w.start_time)
                                   AT TIME ZONE :zone) AS bigint) / 1800, :parts) = :part
ORDER BY q.position
"""

_PREFERRED = """
SELECT t.id, t.teacher_id, t.start_at FROM timeslots t
JOIN unnest(CAST(:teachers AS bigint[]), CAST(:starts AS timestamptz[])) AS p(teacher_id, start_at)
  ON t.teacher_id = p.teacher_id AND t.start_at = p.start_at
WHERE t.state = 'open' AND t.direction = 'general'
ORDER BY t.id
FOR UPDATE OF t SKIP LOCKED
"""

# The teachers of the course types, each with their live classes in the run's week, which "any
# teacher" wishes spread by: counted through ix_classes_live_teacher_start, so the cost follows
# the week's live classes, not every class ever booked; once for a chunk that has such wishes.
_LOADS = """
SELECT tt.id, tt.course_types,
       (SELECT count(*) FROM classes c
        WHERE c.teacher_id = tt.id AND c.state <> 'cancelled'
          AND c.start_at >= :week_from AND c.start_at < :week_to) AS load
FROM teachers tt
WHERE CAST(tt.course_types AS text[]) && CAST(:types AS text[])
"""


async def book_chunk(session: AsyncSession, step: BookChunk, rules: BookingRules) -> ChunkOutcome:
    """One round for one chunk of students, in one transaction (see the module's story)."""
    outcome = (await book_chunk_parts({0: session}, step, rules, parts=1))[0]
    await count_chunk(session, step.run_id, outcome)
    return outcome


def part_of(start_at: datetime, parts: int) -> int:
    """Which of `parts` transactions books the wishes at this start: half hours in turn."""
    return int(start_at.timestamp()) // 1800 % parts


async def book_chunk_parts(
    sessions: dict[int, AsyncSession], step: BookChunk, rules: BookingRules, *, parts: int
) -> dict[int, ChunkOutcome]:
    """The chunk's wishes in `parts` transactions side by side: part p, in sessions[p], books
    the wishes at the starts of part p (`part_of`; only the parts given). Wishes at different
    starts never compete for a slot, an account or a busy time (a student has one wish in a
    round), so PostgreSQL books the parts at once; the choices are made here as for one
    transaction, in the fair order over all of them. The run's counts are the caller's
    (`count_chunk`), once each part is done."""
    any_session = next(iter(sessions.values()))
    run = await any_session.get_one(BookingRun, step.run_id)
    kind = RunKind(run.kind)
    zone, now = rules.business_time_zone, step.now

    async def read(part: int, session: AsyncSession) -> list[_Wish]:
        rows = await session.execute(
            text(_WISHES),
            {
                "rule_kind": kind.rule_kind,
                "week": run.week,
                "zone": zone,
                "round": step.round,
                "run": run.id,
                "first": step.first,
                "last": step.first + step.size,
                "part": part,
                "parts": parts,
            },
        )
        return [_Wish(*row) for row in rows]

    shares = dict(
        zip(
            sessions,
            await asyncio.gather(*(read(p, session) for p, session in sessions.items())),
            strict=True,
        )
    )
    wishes = sorted((w for share in shares.values() for w in share), key=lambda w: w.position)
    if not wishes:
        return {p: ChunkOutcome(students=0, booked=0, failed=0) for p in sessions}
    earliest, latest = now + rules.student_book_min_lead, now + rules.student_book_ahead
    open_wishes = []
    for wish in wishes:
        if not is_one_on_one(CourseType(wish.course_type)):
            wish.reason = OpenClassBySeat.code
        elif wish.busy:
            wish.reason = "student_busy"
        elif not earliest <= wish.start_at <= latest:
            wish.reason = "outside_booking_window"
        elif wish.balance < 1:
            wish.reason = "insufficient_balance"
        else:
            open_wishes.append(wish)

    # The exclusive teachers' slots of this week stay theirs until the window closes (SD-2).
    protected_until = at(run.week - WEEK, 0, rules.exclusive_priority_until, zone)
    exclusive_teachers: set[int] = set()
    if now < protected_until:
        exclusive_teachers = set(
            await any_session.scalars(
                select(Student.exclusive_teacher_id)
                .where(Student.exclusive_teacher_id.is_not(None))
                .distinct()
            )
        )

    def may_take(wish: _Wish, teacher_id: int) -> bool:
        return teacher_id not in exclusive_teachers or teacher_id == wish.exclusive_teacher_id

    teaches: dict[int, list[str]] = {}
    preferred_ids = sorted({t for w in open_wishes for t in w.teacher_ids})
    if preferred_ids:
        teaches = dict(
            (
                await any_session.execute(
                    text("SELECT id, course_types FROM teachers WHERE id = ANY(:ids)"),
                    {"ids": preferred_ids},
                )
            ).all()
        )
    preferred = {
        id(w): [(t, w.start_at) for t in w.teacher_ids if w.course_type in teaches.get(t, ())]
        for w in open_wishes
    }
    free: dict[tuple[int, datetime], int] = {}
    probed: set[tuple[int, datetime]] = set()
    part_at: dict[datetime, int] = {}

    async def lock_free(pairs: list[tuple[int, datetime]]) -> None:
        """Lock those of the (teacher, start) slots that are open and not locked elsewhere,
        each in the transaction of its start's part."""
        probed.update(pairs)
        by_part: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
        for pair in pairs:
            if (part := part_at.get(pair[1])) is None:
                part = part_at[pair[1]] = part_of(pair[1], parts)
            by_part[part].append(pair)

        async def lock(part: int, some: list[tuple[int, datetime]]) -> None:
            for slot_id, teacher_id, start_at in await sessions[part].execute(
                text(_PREFERRED),
                {"teachers": [p[0] for p in some], "starts": [p[1] for p in some]},
            ):
                free[(teacher_id, start_at)] = slot_id

        await asyncio.gather(*(lock(part, some) for part, some in by_part.items()))

    # Pass 1 below gives each wish its first preferred teacher if that slot is free, nobody
    # else in the chunk names it and the wish may take it; only the other wishes ever look at
    # their later preferences. So those are all the slots locked: every first choice, and the
    # later choices of those other wishes (most wishes need one lookup, not three).
    await lock_free(sorted({pairs[0] for pairs in preferred.values() if pairs}))
    named = Counter(pair for pairs in preferred.values() for pair in pairs)
    await lock_free(
        sorted(
            {
                pair
                for wish in open_wishes
                if (pairs := preferred[id(wish)])
                and (pairs[0] not in free or named[pairs[0]] > 1 or not may_take(wish, pairs[0][0]))
                for pair in pairs[1:]
            }
        )
    )
    used: set[int] = set()
    # Pass 1, in the fair order: each wish's preferred teachers, in the student's order.
    for wish in open_wishes:
        for teacher_id in wish.teacher_ids:
            slot_id = free.get((teacher_id, wish.start_at))
            if slot_id is not None and slot_id not in used and may_take(wish, teacher_id):
                wish.slot = (slot_id, teacher_id)
                used.add(slot_id)
                break
    # Pass 2: for those who said any teacher will do, in the fair order, the free teacher of
    # the course type with the fewest classes in the week (this chunk's included), then the
    # lowest id. Teachers are looked at in the order of their counts as pass 2 begins, at each
    # start the wishes want, the first 32 and then twice as deep whenever a wish is undecided:
    # a teacher not yet looked at has at least the count of the next in that order, so a free
    # one found with no more than that is the one.
    fallback = [w for w in open_wishes if w.slot is None and w.any_teacher]
    if fallback:
        week_from = at(run.week, 0, time(0), zone)
        load: Counter[int] = Counter(w.slot[1] for w in open_wishes if w.slot is not None)
        ranked: dict[str, list[int]] = defaultdict(list)
        for teacher_id, course_types, classes in await any_session.execute(
            text(_LOADS),
            {
                "types": sorted({w.course_type for w in fallback}),
                "week_from": week_from,
                "week_to": week_from + WEEK,
            },
        ):
            load[teacher_id] += classes
            for course_type in course_types:
                ranked[course_type].append(teacher_id)
        for teachers in ranked.values():
            teachers.sort(key=lambda t: (load[t], t))
        start_load = dict(load)
        looked: dict[tuple[datetime, str], int] = defaultdict(int)  # teachers looked at, by start

        async def look(depth: int, keys: set[tuple[datetime, str]]) -> None:
            """Look at (and lock, if free) the slots of the first `depth` teachers at each start."""
            pairs = {
                (t, start_at)
                for start_at, course_type in keys
                for t in ranked[course_type][looked[(start_at, course_type)] : depth]
                if (t, start_at) not in probed
            }
            for key in keys:
                looked[key] = max(looked[key], depth)
            await lock_free(sorted(pairs))

        depth = 32
        await look(depth, {(w.start_at, w.course_type) for w in fallback})
        i = 0
        while i < len(fallback):
            wish = fallback[i]
            key, teachers = (wish.start_at, wish.course_type), ranked[wish.course_type]
            best = min(
                (
                    (load[t], t, free[(t, wish.start_at)])
                    for t in teachers[: looked[key]]
                    if (t, wish.start_at) in free
                    and free[(t, wish.start_at)] not in used
                    and may_take(wish, t)
                ),
                default=None,
            )
            if looked[key] < len(teachers):
                frontier = teachers[looked[key]]
                if best is None or best[:2] > (start_load[frontier], frontier):
                    # Not decided by the teachers looked at: twice as deep, for every start
                    # still to come (the picks go deeper in the order for all of them).
                    depth *= 2
                    await look(depth, {(w.start_at, w.course_type) for w in fallback[i:]})
                    continue
            if best is not None:
                _, teacher_id, slot_id = best
                wish.slot = (slot_id, teacher_id)
                used.add(slot_id)
                load[teacher_id] += 1
            i += 1
    for wish in open_wishes:
        if wish.slot is None:
            wish.reason = "no_free_teacher" if wish.any_teacher else "preferred_teachers_busy"

    async def write(part: int, share: list[_Wish]) -> ChunkOutcome:
        await _write(sessions[part], run, step.round, share, step.actor, now)
        booked = sum(1 for w in share if w.slot is not None)
        return ChunkOutcome(students=len(share), booked=booked, failed=len(share) - booked)

    return dict(
        zip(
            shares,
            await asyncio.gather(*(write(p, share) for p, share in shares.items())),
            strict=True,
        )
    )


async def count_chunk(session: AsyncSession, run_id: int, outcome: ChunkOutcome) -> None:
    """Add a chunk's (or a part's) outcome to the run's counts, in the transaction that booked
    it."""
    await session.execute(
        update(BookingRun)
        .where(BookingRun.id == run_id)
        .values(
            booked=BookingRun.booked + outcome.booked,
            failed=BookingRun.failed + outcome.failed,
        )
    )


async def _write(
    session: AsyncSession,
    run: BookingRun,
    round_: int,
    wishes: list[_Wish],
    actor: Actor,
    now: datetime,
) -> None:
    chosen = [w for w in wishes if w.slot is not None]
    if chosen:
        await session.execute(
            text("UPDATE timeslots SET state = 'booked', updated_at = :now WHERE id = ANY(:ids)"),
            {"now": now, "ids": [w.slot[0] for w in chosen if w.slot]},
        )
        inserted = await session.execute(
            text(
                """
                INSERT INTO classes (student_id, teacher_id, timeslot_id, start_at, course_type,
                    state, payment_asset, payment_key, payment_amount, refunded, channel,
                    actor_id, created_at, updated_at)
                SELECT s, t, ts, st, ct, 'booked', 'credit', ct, 1, false, :channel, :actor,
                       :now, :now
                FROM unnest(CAST(:students AS bigint[]), CAST(:teachers AS bigint[]),
                            CAST(:slots AS bigint[]), CAST(:starts AS timestamptz[]),
                            CAST(:types AS text[])) AS x(s, t, ts, st, ct)
                ON CONFLICT DO NOTHING
                RETURNING id, student_id, timeslot_id
                """
            ),
            {
                "students": [w.student_id for w in chosen],
                "teachers": [w.slot[1] for w in chosen if w.slot],
                "slots": [w.slot[0] for w in chosen if w.slot],
                "starts": [w.start_at for w in chosen],
                "types": [w.course_type for w in chosen],
                "channel": actor.channel.value,
                "actor": actor.id,
                "now": now,
            },
        )
        class_of = {slot: (cid, sid) for cid, sid, slot in inserted}
        # A concurrent booking made the student busy at that time: the slot goes back.
        for wish in chosen:
            assert wish.slot is not None
            if wish.slot[0] not in class_of:
                wish.reason = "student_busy"
        paying = [w for w in chosen if w.reason is None]
        paid = set(
            await session.scalars(
                text(
                    """
                    UPDATE accounts a SET balance = a.balance - 1
                    FROM unnest(CAST(:students AS bigint[]), CAST(:types AS text[]))
                      AS d(student_id, key)
                    WHERE a.student_id = ANY(CAST(:students AS bigint[]))
                      AND a.student_id = d.student_id AND a.asset = 'credit'
                      AND a.key = d.key AND a.balance >= 1
                    RETURNING a.student_id
                    """
                ),
                {
                    "students": [w.student_id for w in paying],
                    "types": [w.course_type for w in paying],
                },
            )
        )
        unpaid = [w for w in paying if w.student_id not in paid]
        for wish in unpaid:  # spent meanwhile by a concurrent booking
            wish.reason = "insufficient_balance"
        if unpaid:
            await session.execute(
                text("DELETE FROM classes WHERE id = ANY(:ids)"),
                {"ids": [class_of[w.slot[0]][0] for w in unpaid if w.slot]},
            )
        back = [w.slot[0] for w in chosen if w.reason is not None and w.slot]
        if back:
            await session.execute(
                text("UPDATE timeslots SET state = 'open', updated_at = :now WHERE id = ANY(:ids)"),
                {"now": now, "ids": back},
            )
        for wish in chosen:
            if wish.reason is not None:
                wish.slot = None
        done = [w for w in chosen if w.slot is not None]
        if done:
            class_ids = [class_of[w.slot[0]][0] for w in done if w.slot]
            await session.execute(
                text(
                    """
                    INSERT INTO ledger_entries (student_id, asset, key, delta, reason, class_id,
                        channel, actor_id, occurred_at)
                    SELECT s, 'credit', ct, -1, 'booking', c, :channel, :actor, :now
                    FROM unnest(CAST(:students AS bigint[]), CAST(:types AS text[]),
                                CAST(:classes AS bigint[])) AS x(s, ct, c)
                    """
                ),
                {
                    "students": [w.student_id for w in done],
                    "types": [w.course_type for w in done],
                    "classes": class_ids,
                    "channel": actor.channel.value,
                    "actor": actor.id,
                    "now": now,
                },
            )
            await session.execute(
                text(
                    audit.INSERT_CONCERNING
                    + """
                    SELECT 'timeslot', slot, 'booked', :channel, :actor,
                           CAST(:now AS timestamptz),
                           jsonb_build_object('run_id', CAST(:run AS bigint), 'other', class),
                           student, ARRAY[teacher]
                    FROM unnest(CAST(:slots AS bigint[]), CAST(:classes AS bigint[]),
                                CAST(:students AS bigint[]), CAST(:teachers AS bigint[]))
                      AS x(slot, class, student, teacher)
                    UNION ALL
                    SELECT 'class', class, 'booked', :channel, :actor, CAST(:now AS timestamptz),
                           jsonb_build_object('run_id', CAST(:run AS bigint), 'other', slot),
                           student, ARRAY[teacher]
                    FROM unnest(CAST(:slots AS bigint[]), CAST(:classes AS bigint[]),
                                CAST(:students AS bigint[]), CAST(:teachers AS bigint[]))
                      AS x(slot, class, student, teacher)
                    """
                ),
                {
                    "slots": [w.slot[0] for w in done if w.slot],
                    "classes": class_ids,
                    "students": [w.student_id for w in done if w.slot],
                    "teachers": [w.slot[1] for w in done if w.slot],
                    "run": run.id,
                    "channel": actor.channel.value,
                    "actor": actor.id,
                    "now": now,
                },
            )
        for wish in done:
            assert wish.slot is not None
            wish.class_id = class_of[wish.slot[0]][0]
    await session.execute(
        text(
            """
            INSERT INTO booking_results (run_id, student_id, position, start_at, teacher_id,
                                         class_id, reason)
            SELECT :run, s, :position, st, t, c, r
            FROM unnest(CAST(:students AS bigint[]), CAST(:starts AS timestamptz[]),
                        CAST(:teachers AS bigint[]), CAST(:classes AS bigint[]),
                        CAST(:reasons AS text[])) AS x(s, st, t, c, r)
            """
        ),
        {
            "run": run.id,
            "position": round_,
            "students": [w.student_id for w in wishes],
            "starts": [w.start_at for w in wishes],
            "teachers": [w.slot[1] if w.slot else None for w in wishes],
            "classes": [w.class_id for w in wishes],
            "reasons": [w.reason for w in wishes],
        },
    )


async def finish_run(session: AsyncSession, run_id: int, now: datetime) -> RunView:
    run = await session.get_one(BookingRun, run_id)
    run.state, run.finished_at = RunState.done.value, now
    return RunView.model_validate(run)


async def get_run(session: AsyncSession, run_id: int) -> RunView:
    return RunView.model_validate(await get_or_404(session, BookingRun, "booking_run", run_id))


async def results_of(
    session: AsyncSession, run_id: int, student_id: int | None, limit: int, after_student: int
) -> list[ResultView]:
    await get_run(session, run_id)
    query = select(BookingResult).where(
        BookingResult.run_id == run_id, BookingResult.student_id > after_student
    )
    if student_id is not None:
        query = query.where(BookingResult.student_id == student_id)
    rows = await session.scalars(
        query.order_by(BookingResult.student_id, BookingResult.position).limit(limit)
    )
    return [ResultView.model_validate(r) for r in rows]
