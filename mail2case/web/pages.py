"""The board's pages: the queue (and its refreshing table), a case, an attachment, the report."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mail2case.cli import views
from mail2case.web import display, report
from mail2case.web.auth import agents_only
from mail2case.web.board import Board, board_of
from sla.clocks import Status
from sla.policy import Priority
from storage import blobs, cases
from storage import board as queries
from storage.cases import OPEN_STATUSES

if TYPE_CHECKING:
    from starlette.requests import Request

QUEUE_LIMIT = 10000  # as `cases list`: an operator's screen, not an export
# The rows shown unless the agent asks for all: the most urgent; the filters find the rest.
QUEUE_PAGE = 500
MAX_FIELD = 200
REPORT_DAYS = 30
MAX_REPORT_DAYS = 366
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")


def _wanted(request: Request) -> queries.QueueFilter:
    q = request.query_params
    plans = set(board_of(request).config.policy.plans)

    def one_of(name: str, allowed: set[str]) -> str:
        value = q.get(name, "")
        return value if value in allowed else ""

    return queries.QueueFilter(
        plan=one_of("plan", plans),
        priority=one_of("priority", {p.value for p in Priority}),
        status=one_of("status", set(OPEN_STATUSES)),
        owner=q.get("owner", "").strip()[:MAX_FIELD],
        customer=q.get("customer", "").strip()[:MAX_FIELD],
        search=q.get("q", "").strip()[:MAX_FIELD],
    )


def _queue(
    board: Board, wanted: queries.QueueFilter, limit: int
) -> tuple[list[display.QueueRow], int]:
    now = board.now()
    with board.sessions() as s:
        rows = queries.open_queue(s, wanted, limit)
        total = len(rows) if len(rows) < limit else queries.count_open(s, wanted)
    return [display.queue_row(r, now) for r in rows], total


def _limit(request: Request) -> int:
    return QUEUE_LIMIT if request.query_params.get("rows") == "all" else QUEUE_PAGE


async def _queue_response(request: Request, agent: str, template: str) -> Response:
    board, wanted, limit = board_of(request), _wanted(request), _limit(request)
    rows, total = await run_in_threadpool(_queue, board, wanted, limit)
    query = {
        "plan": wanted.plan,
        "priority": wanted.priority,
        "status": wanted.status,
        "owner": wanted.owner,
        "customer": wanted.customer,
        "q": wanted.search,
        "rows": "all" if limit == QUEUE_LIMIT else "",
    }
    # Rendering thousands of rows takes a while: off the daemon's loop, like the query.
    return await run_in_threadpool(
        board.page,
        request,
        template,
        agent,
        rows=rows,
        total=total,
        shows_all=limit == QUEUE_LIMIT,
        wanted=wanted,
        query=urlencode({k: v for k, v in query.items() if v}),
        plans=sorted(board.config.policy.plans),
        priorities=[p.value for p in Priority],
        statuses=list(OPEN_STATUSES),
        refresh_seconds=int(board.config.web.refresh.total_seconds()),
    )


@agents_only
async def queue_page(request: Request, agent: str) -> Response:
    """``GET /``: the open cases in queue order, with filters and live countdowns."""
    return await _queue_response(request, agent, "queue.html")


@agents_only
async def queue_rows(request: Request, agent: str) -> Response:
    """``GET /queue/rows``: the queue's table alone, for htmx to swap in (refresh, filter)."""
    return await _queue_response(request, agent, "_queue_table.html")


def _case(board: Board, ref: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    now = board.now()
    with board.sessions() as s:
        case = cases.case_detail(s, ref)
        if case is None:
            return None
        detail = views.case_detail(case)  # what `cases show --json` prints
        for shown, message in zip(detail["messages"], case.messages, strict=True):
            for item, attachment in zip(shown["attachments"], message.attachments, strict=True):
                item["id"] = attachment.id
        clocks = [display.clock_view(c, now) for c in queries.case_clocks(s, case.id)]
    return detail, clocks


@agents_only
async def case_page(request: Request, agent: str) -> Response:
    """``GET /cases/REF``: the thread, the priority and why, the clocks, the audit trail."""
    board, ref = board_of(request), int(request.path_params["ref"])
    found = await run_in_threadpool(_case, board, ref)
    if found is None:
        return not_found(request, agent)
    detail, clocks = found
    return board.page(
        request,
        "case.html",
        agent,
        case=detail,
        clocks=clocks,
        opened=detail["opened_at"],
        priorities=[p.value for p in Priority],
        all_statuses=[st.value for st in Status],
    )


def not_found(request: Request, agent: str | None) -> Response:
    """The 404 page."""
    return board_of(request).page(
        request, "message.html", agent, 404, heading="Not found", text="There is no such page."
    )


def _attachment(board: Board, ref: int, attachment_id: int) -> tuple[str, bytes] | None:
    with board.sessions() as s:
        found = queries.case_attachment(s, ref, attachment_id)
        if found is None:
            return None
        data = blobs.load_blob(s, found.sha256, board.config.processing.attachments_dir)
        return (found.filename, data) if data is not None else None


@agents_only
async def attachment(request: Request, agent: str) -> Response:
    """``GET /cases/REF/attachments/ID``: always a download, never rendered, whatever its type."""
    board = board_of(request)
    ref, attachment_id = int(request.path_params["ref"]), int(request.path_params["id"])
    found = await run_in_threadpool(_attachment, board, ref, attachment_id)
    if found is None:
        return not_found(request, agent)
    filename, data = found
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        },
    )


def safe_download_name(name: str) -> str:
    """A filename that is only a name: no path, no control or format characters, not empty."""
    base = PurePosixPath(name.replace("\\", "/")).name
    kept = "".join(c for c in base if unicodedata.category(c)[0] not in {"C", "Z"} or c == " ")
    kept = kept.strip(" .")[:150]
    return kept or "attachment"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact one in RFC 5987 form."""
    safe = safe_download_name(name)
    fallback = _UNSAFE_IN_NAME.sub("_", safe) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(safe, safe='')}"


def _period(request: Request, today: date) -> tuple[date, date]:
    def day(name: str, default: date) -> date:
        try:
            return date.fromisoformat(request.query_params.get(name, ""))
        except ValueError:
            return default

    until = day("until", today + timedelta(days=1))
    since = day("since", day("from", until - timedelta(days=REPORT_DAYS)))
    if not since < until or (until - since).days > MAX_REPORT_DAYS:
        since = until - timedelta(days=REPORT_DAYS)
    return since, until


def _report(board: Board, since: date, until: date) -> dict[str, Any]:
    now = board.now()
    start = datetime.combine(since, datetime.min.time(), UTC)
    end = datetime.combine(until, datetime.min.time(), UTC)
    with board.sessions() as s:
        clocks = queries.clocks_due_between(s, start, end)
        ages = queries.open_case_ages(s)
    plans = sorted(board.config.policy.plans)
    table = report.compliance(clocks, plans, now)
    bars, top = report.chart_bars(report.breaches_per_day(clocks, since, until, now), since)
    return {
        "compliance": [
            {
                "plan": plan,
                "priority": priority,
                "first": table[(plan, priority, "first")],
                "update": table[(plan, priority, "update")],
            }
            for plan in plans
            for priority in report.PRIORITIES
        ],
        "chart": {
            "bars": bars,
            "top": top,
            "width": report.CHART_WIDTH,
            "height": report.CHART_HEIGHT,
            "pad": report.CHART_PAD,
        },
        "backlog": report.backlog_by_age(ages, now),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "last_day": (until - timedelta(days=1)).isoformat(),
    }


@agents_only
async def sla_page(request: Request, agent: str) -> Response:
    """``GET /sla``: compliance per plan and priority, breaches per day, backlog by age."""
    board = board_of(request)
    since, until = _period(request, board.now().date())
    data = await run_in_threadpool(_report, board, since, until)
    return board.page(request, "sla.html", agent, **data)
