"""Reads that skip the ORM's autoflush when nothing pending could change their answer.

Before every ORM read, the session writes what has changed since its last flush. In
the case work that was nearly always the previous message's ``Case.updated_at``: a unit
of work of its own (0.1-0.3 ms) before the next message's thread lookup and clock read,
neither of which reads that column. Those reads now flush only when an object they could
see is new, deleted, or changed; everything else is written with the rest of the group
at the commit (or the next read that needs it), in the same transaction.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session

    from storage.models import Base

__all__ = ["autoflush_for"]


@contextmanager
def autoflush_for(session: Session, *read: type[Base]) -> Iterator[None]:
    """Autoflush inside the block only if a new, deleted or changed object may be read.

    ``read``: the mapped classes whose rows the block's statements read. Any new or
    deleted object counts (an insert or delete may cascade or be joined to); a changed
    object counts if it is of a class in ``read``.
    """
    if session.new or session.deleted or any(isinstance(o, read) for o in session.dirty):
        yield
        return
    with session.no_autoflush:
        yield
