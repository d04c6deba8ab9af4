"""Agents' actions on a case: priority, status, owner; the same service calls as CLI and mail.

Each is a POST carrying the session's CSRF token. The change goes through
``sla.tracking.change_priority``, ``sla.tracking.change_status`` or
``storage.cases.assign_owner``, exactly as ``cases update`` and the ``#priority``,
``#status`` and ``#assign`` mail commands do, so the audit trail records the same
event with the signed-in agent as its actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from mail2case.web.auth import CSRF_FIELD, agents_only, csrf_refused, is_csrf_valid
from mail2case.web.board import Board, board_of
from sla import tracking
from sla.clocks import Status
from sla.policy import Priority
from storage import cases

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session
    from starlette.datastructures import FormData
    from starlette.requests import Request

    from storage.models import Case

    # One change: (session, case, agent) -> whether anything changed.
    Change = Callable[[Session, Case, str], bool]

log = structlog.get_logger("mail2case.web")
MAX_REASON = 500


class ActionError(ValueError):
    """A form that asks for no valid change; its text is shown to the agent."""


def _field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip()[:MAX_REASON] if isinstance(value, str) else ""


def _priority_change(board: Board, form: FormData) -> Change:
    try:
        priority = Priority.parse(_field(form, "priority"))
    except ValueError as exc:
        raise ActionError(str(exc)) from exc
    reason = _field(form, "reason")
    if not reason:
        raise ActionError("a priority change needs a reason (it is kept with the change)")

    def change(s: Session, case: Case, agent: str) -> bool:
        now = board.now()
        return tracking.change_priority(
            s, case, priority, now, actor=agent, reason=reason, context=board.sla_context(now)
        )

    return change


def _status_change(board: Board, form: FormData) -> Change:
    try:
        status = Status(_field(form, "status"))
    except ValueError as exc:
        raise ActionError("the status must be open, pending, solved or closed") from exc
    reason = _field(form, "reason")

    def change(s: Session, case: Case, agent: str) -> bool:
        now = board.now()
        return tracking.change_status(
            s, case, status, now, actor=agent, reason=reason, context=board.sla_context(now)
        )

    return change


def _owner_change(board: Board, form: FormData) -> Change:
    owner = _field(form, "owner").lower()
    if not board.signin.is_agent(owner):
        raise ActionError("a case is assigned to an agent: that address is not one")

    def change(s: Session, case: Case, agent: str) -> bool:
        return cases.assign_owner(s, case, owner, board.now(), actor=agent)

    return change


def _apply(board: Board, ref: int, agent: str, change: Change) -> bool | None:
    """Run one change in one transaction; None when there is no such case."""
    with board.sessions.begin() as s:
        case = cases.case_by_ref(s, ref)
        return None if case is None else change(s, case, agent)


def _action(name: str, build: Callable[[Board, FormData], Change]) -> Callable[..., object]:
    @agents_only
    async def handler(request: Request, agent: str) -> Response:
        form = await request.form()
        if not is_csrf_valid(request, form.get(CSRF_FIELD)):
            return csrf_refused()
        board, ref = board_of(request), int(request.path_params["ref"])
        try:
            change = build(board, form)
        except ActionError as exc:
            return PlainTextResponse(f"not changed: {exc}\n", 400)
        changed = await run_in_threadpool(_apply, board, ref, agent, change)
        if changed is None:
            return PlainTextResponse(f"no case {ref}\n", 404)
        log.info("board.case_changed", case_ref=ref, action=name, agent=agent, changed=changed)
        return RedirectResponse(f"/cases/{ref}", 303)

    handler.__name__ = handler.__qualname__ = f"{name}_action"
    handler.__doc__ = f"``POST /cases/REF/{name}``: the {name} change, CSRF-checked."
    return handler


change_priority = _action("priority", _priority_change)
change_status = _action("status", _status_change)
assign = _action("assign", _owner_change)
