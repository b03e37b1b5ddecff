"""The invariants of the data, as SQL over the tables (store/models.py, migrations/): checked
after every reliability test, whatever was killed or stopped on the way.

A class is live unless it is cancelled (booked or finished); a timeslot is live unless removed.
Each check is a query for the rows that break it: none may come back.
"""

import asyncpg

CHECKS: dict[str, str] = {
    "a timeslot with two live classes": """
        SELECT timeslot_id, array_agg(id ORDER BY id) AS classes FROM classes
        WHERE state <> 'cancelled' AND timeslot_id IS NOT NULL
        GROUP BY timeslot_id HAVING count(*) > 1
    """,
    "a student in two live classes at one start": """
        SELECT student_id, start_at, array_agg(id ORDER BY id) AS classes FROM classes
        WHERE state <> 'cancelled'
        GROUP BY student_id, start_at HAVING count(*) > 1
    """,
    "a teacher with two live timeslots at one start": """
        SELECT teacher_id, start_at, array_agg(id ORDER BY id) AS slots FROM timeslots
        WHERE state <> 'removed'
        GROUP BY teacher_id, start_at HAVING count(*) > 1
    """,
    "a live class whose timeslot is not booked, or is another teacher's or time": """
        SELECT c.id, c.teacher_id, c.start_at, t.id AS slot, t.teacher_id AS slot_teacher,
               t.start_at AS slot_start, t.state AS slot_state
        FROM classes c JOIN timeslots t ON t.id = c.timeslot_id
        WHERE c.state <> 'cancelled'
          AND (t.state <> 'booked' OR t.teacher_id <> c.teacher_id OR t.start_at <> c.start_at)
    """,
    "a booked timeslot without a live class": """
        SELECT t.id FROM timeslots t
        WHERE t.state = 'booked' AND NOT EXISTS (
            SELECT 1 FROM classes c WHERE c.timeslot_id = t.id AND c.state <> 'cancelled')
    """,
    "a negative balance": "SELECT student_id, asset, key, balance FROM accounts WHERE balance < 0",
    "a balance that is not the sum of its ledger": """
        SELECT coalesce(a.student_id, l.student_id) AS student_id,
               coalesce(a.asset, l.asset) AS asset, coalesce(a.key, l.key) AS key,
               a.balance, l.total
        FROM accounts a FULL JOIN (
            SELECT student_id, asset, key, sum(delta) AS total FROM ledger_entries
            GROUP BY student_id, asset, key
        ) l ON (l.student_id, l.asset, l.key) = (a.student_id, a.asset, a.key)
        WHERE coalesce(a.balance, 0) <> coalesce(l.total, 0)
    """,
    "a class not paid by exactly one debit of its price": """
        SELECT c.id, c.payment_amount,
               count(e.id) FILTER (WHERE e.delta < 0) AS debits,
               coalesce(sum(e.delta) FILTER (WHERE e.delta < 0), 0) AS debited
        FROM classes c LEFT JOIN ledger_entries e ON e.class_id = c.id
        GROUP BY c.id
        HAVING count(e.id) FILTER (WHERE e.delta < 0) <> 1
            OR coalesce(sum(e.delta) FILTER (WHERE e.delta < 0), 0) <> -c.payment_amount
    """,
    "a class refunded other than once in full, when cancelled with a refund": """
        SELECT c.id, c.state, c.refunded, count(e.id) AS refunds, sum(e.delta) AS refunded_sum
        FROM classes c LEFT JOIN ledger_entries e ON e.class_id = c.id AND e.delta > 0
        GROUP BY c.id
        HAVING count(e.id) <> CASE WHEN c.state = 'cancelled' AND c.refunded THEN 1 ELSE 0 END
            OR coalesce(sum(e.delta), c.payment_amount) <> c.payment_amount
    """,
    "a class's payment on another student's or asset's account": """
        SELECT c.id, e.id AS entry FROM classes c JOIN ledger_entries e ON e.class_id = c.id
        WHERE e.student_id <> c.student_id OR e.asset <> c.payment_asset
           OR e.key <> c.payment_key
    """,
    "a class request whose hold is not held once, or released other than once when closed": """
        SELECT r.id, r.state,
               count(e.id) FILTER (WHERE e.delta < 0) AS holds,
               count(e.id) FILTER (WHERE e.delta > 0) AS releases,
               coalesce(sum(e.delta), 0) AS total
        FROM class_requests r LEFT JOIN ledger_entries e ON e.request_id = r.id
        GROUP BY r.id
        HAVING count(e.id) FILTER (WHERE e.delta < 0) <> 1
            OR count(e.id) FILTER (WHERE e.delta > 0)
               <> CASE WHEN r.state = 'pending' THEN 0 ELSE 1 END
            OR coalesce(sum(e.delta), 0)
               <> CASE WHEN r.state = 'pending' THEN -r.payment_amount ELSE 0 END
    """,
    "an approved class request without its class, or a class on a request not approved": """
        SELECT r.id, r.state, r.class_id, c.state AS class_state FROM class_requests r
        LEFT JOIN classes c ON c.id = r.class_id
        WHERE (r.state = 'approved') <> (r.class_id IS NOT NULL)
           OR (r.state = 'approved' AND (c.student_id <> r.student_id
                OR c.teacher_id <> r.teacher_id OR c.start_at <> r.start_at))
    """,
}


async def violations(database_url: str) -> dict[str, list[dict[str, object]]]:
    """Each broken invariant with the rows that break it."""
    connection = await asyncpg.connect(
        database_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        found: dict[str, list[dict[str, object]]] = {}
        for name, query in CHECKS.items():
            rows = await connection.fetch(query)
            if rows:
                found[name] = [dict(r) for r in rows[:20]]
        return found
    finally:
        await connection.close()


async def assert_invariants(database_url: str) -> None:
    found = await violations(database_url)
    assert not found, f"broken invariants: {found}"
