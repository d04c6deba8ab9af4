"""What every page of the board works with: the config, the database, sign-in, templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.templating import Jinja2Templates

from mail2case import app
from mail2case.web.auth import csrf_token

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from starlette.requests import Request
    from starlette.responses import Response

    from mail2case.config.settings import Config
    from mail2case.web.signin import SignIn
    from sla.tracking import SlaContext


def templates() -> Jinja2Templates:
    """The board's templates (packaged), autoescaped: every value renders as text."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mail2case.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


@dataclass(frozen=True)
class Board:
    """The board's parts, kept in ``app.state.board`` for the handlers."""

    config: Config
    sessions: sessionmaker[Session]
    signin: SignIn
    templates: Jinja2Templates = field(default_factory=templates)
    # The holidays of a country are computed per year: once, not per request.
    _contexts: dict[int, SlaContext] = field(default_factory=dict)

    def now(self) -> datetime:
        """The current time (aware UTC): the edge reads the clock, the views are given it."""
        return datetime.now(UTC)

    def sla_context(self, now: datetime) -> SlaContext:
        """The SLA context the CLI's ``cases update`` uses, for the year of ``now``."""
        if now.year not in self._contexts:
            calendar = app.team_calendar(self.config, datetime(now.year, 7, 1, tzinfo=UTC))
            self._contexts[now.year] = app.sla_context(self.config, calendar)
        return self._contexts[now.year]

    def page(
        self, request: Request, name: str, agent: str | None, status: int = 200, **context: Any
    ) -> Response:
        """A rendered page, with what the layout needs (the agent, the CSRF token)."""
        base = {
            "agent": agent,
            "csrf": csrf_token(request),
            "support_name": self.config.support.name,
            "ref_prefix": self.config.support.ref_prefix,
        }
        return self.templates.TemplateResponse(request, name, base | context, status_code=status)


def board_of(request: Request) -> Board:
    """The board serving ``request``."""
    board: Board = request.app.state.board
    return board
