"""Only `bot.store.job_states` writes a job's state: every other module's SQL leaves the column alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
AUTHORITY = Path("bot/store/job_states.py")

_UPDATE = re.compile(
    r"\bUPDATE\s+(?:OR\s+\w+\s+)?jobs\s+SET\b(?P<set>.*?)(?:\bWHERE\b|\bRETURNING\b|\bFROM\b|$)", re.I | re.S
)
_INSERT = re.compile(r"\b(?:INSERT|REPLACE)\s+(?:OR\s+\w+\s+)?INTO\s+jobs\s*\((?P<columns>[^)]*)\)", re.I | re.S)
_STATE = re.compile(r"\bstate\b", re.I)


def _sql_texts(source: str) -> list[str]:
    """Every string in `source`, each f-string whole with its placeholders blanked."""
    texts = []
    f_string_parts = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            f_string_parts.update(id(part) for part in node.values)
            texts.append("".join(part.value if isinstance(part, ast.Constant) else "?" for part in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in f_string_parts:
            texts.append(node.value)
    return texts


def state_writes(source: str) -> list[str]:
    """The SQL statements in `source` that write the jobs table's `state` column."""
    found = []
    for text in _sql_texts(source):
        for match in _UPDATE.finditer(text):
            if re.search(r"(?:^|,)\s*state\s*=", match["set"], re.I):
                found.append(match.group(0))
        for match in _INSERT.finditer(text):
            if _STATE.search(match["columns"]):
                found.append(match.group(0))
    return found


def test_the_scan_finds_state_writes() -> None:
    assert state_writes('db.execute("UPDATE jobs SET state = ? WHERE id = ?", (s, i))')
    assert state_writes("q = f\"UPDATE jobs SET error = NULL, state = '{x}' WHERE id = ?\"")
    assert state_writes('db.execute("""INSERT INTO jobs (id, state) VALUES (?, ?)""")')
    assert state_writes('db.execute("UPDATE jobs SET updated_at = 1,\\n    state = :new RETURNING id")')


def test_the_scan_lets_other_writes_and_reads_pass() -> None:
    assert not state_writes('db.execute("UPDATE jobs SET forgiven = 1 WHERE state = ?")')
    assert not state_writes('db.execute("UPDATE jobs SET queue_position = NULL WHERE id = ? AND state = :old")')
    assert not state_writes('db.execute("SELECT state FROM jobs WHERE state = ?")')
    assert not state_writes('db.execute("INSERT INTO jobs_v4 (id, state) SELECT id, state FROM jobs")')


def test_the_authority_writes_every_state() -> None:
    writes = state_writes((ROOT / AUTHORITY).read_text())
    assert len(writes) == 4  # the pending insert, set_request_id, transition, finish_job


def test_no_other_module_writes_a_job_state() -> None:
    offenders = {}
    for path in sorted([*ROOT.glob("bot/**/*.py"), *ROOT.glob("cogs/**/*.py")]):
        relative = path.relative_to(ROOT)
        if relative == AUTHORITY:
            continue
        writes = state_writes(path.read_text())
        if writes:
            offenders[str(relative)] = writes
    assert offenders == {}
