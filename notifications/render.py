"""Rendering of outgoing mail: Jinja2 templates and an envelope into an EmailMessage."""

from __future__ import annotations

import re
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email import quoprimime
from email.errors import HeaderParseError
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UniqueUnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from notifications.errors import RenderError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from email.policy import Policy
    from pathlib import Path

# str.splitlines() breaks on all of these, so any of them in a header value could start a
# new line somewhere down the road; CR and LF are the ones that inject headers over SMTP.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII but the colon
_MIME_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
# Values written as they are, unparsed (see _set_headers): printable ASCII only, so no
# line break of any kind, no encoding, and nothing a reader would need quoted.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 atext
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN_TEXT = re.compile(r"[!-~]+(?: [!-~]+)*")  # words, single spaces, no edge spaces
_PLAIN_NAME = re.compile(rf"{_ATOM}(?: {_ATOM})*")  # a display name that needs no quotes
_PLAIN_ADDR = re.compile(rf"{_DOT_ATOM}@{_DOT_ATOM}")
_PLAIN_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")
_RAW_LINE = re.compile(r"[ -~]*")  # what any line of a raw value may hold


class _MessageIdListHeader(UniqueUnstructuredHeader, BaseHeader):
    """In-Reply-To/References folded only between ids.

    The stdlib treats these headers as unstructured text and turns an id longer than a
    line into RFC 2047 encoded words, which no mail client matches against a Message-ID.
    """

    max_count: ClassVar[Literal[1]] = 1

    def fold(self, *, policy: Policy) -> str:
        """Fold at the spaces between ids, never inside one."""
        words = str(self).split()
        if not all(word.isascii() for word in words):
            return super().fold(policy=policy)
        lines = _fold_ids(self.name, words, policy.max_line_length or 78)
        return policy.linesep.join(lines) + policy.linesep


def _fold_ids(name: str, ids: Sequence[str], max_line_length: int) -> list[str]:
    """``name: id id ...`` as lines, a new one started only where the next id would not fit."""
    lines = [f"{name}:"]
    for word in ids:
        if len(lines[-1]) > len(name) + 1 and len(lines[-1]) + 1 + len(word) > max_line_length:
            lines.append("")
        lines[-1] += f" {word}"
    return lines


class _CachingHeaderRegistry(HeaderRegistry):
    """A HeaderRegistry that makes each header class once.

    The stdlib's builds a new class with ``type()`` on every lookup: for each header
    stored, read back or counted against its maximum. That was a third of the CPU time
    of rendering and serializing a mail. The class depends only on the registered one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        registered = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(registered)
        if made is None:
            made = self._made[registered] = super().__getitem__(name)
        return made


def _header_registry() -> HeaderRegistry:
    registry = _CachingHeaderRegistry()
    registry.map_to_type("in-reply-to", _MessageIdListHeader)
    registry.map_to_type("references", _MessageIdListHeader)
    return registry


_HEADERS = _header_registry()
# LF line endings: what a maildir holds; smtplib turns them into CRLF on the wire.
MAIL_POLICY: Policy = email_policy.default.clone(header_factory=_HEADERS)
_MAX_LINE = MAIL_POLICY.max_line_length or 78
# Names the stdlib parses as something other than unstructured text, or counts as unique.
_REGISTERED = frozenset(_HEADERS.registry)
# The body's fixed headers, parsed once: what set_content and add_alternative store.
# Header objects are immutable (str subclasses), so these serve every message.
_TEXT_TYPES = {
    subtype: _HEADERS("Content-Type", f'text/{subtype}; charset="utf-8"')
    for subtype in ("plain", "html")
}
_QUOTED_PRINTABLE = _HEADERS("Content-Transfer-Encoding", "quoted-printable")
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))  # as email.generator makes them
# How templates show a time, e.g. "Mon 07 Dec 2026 14:00 CET"; and a time there is not.
LOCAL_TIME_FORMAT = "%a %d %b %Y %H:%M %Z"
NO_TIME = "-"
# Times that contexts carried already formatted before the ``local`` filter, as
# (that key, the time it showed, the zone key that now travels with the time). Rows
# queued by such a version are rendered after an upgrade, and override templates may
# still be written for those keys: see _with_local_times.
_FORMATTED_TIMES = (
    ("first_response_due_local", "first_response_due", "customer_timezone"),
    ("due_local_team", "due_at", "team_timezone"),
    ("due_customer_local", "due_utc", "customer_timezone"),
    ("due_team_local", "due_utc", "team_timezone"),
)


@dataclass(frozen=True)
class Envelope:
    """Everything about an outgoing mail that is not its body."""

    from_name: str
    from_addr: str
    to: tuple[str, ...]
    subject: str
    message_id: str
    cc: tuple[str, ...] = ()
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    # RFC 3834: "auto-replied" for answers to a mail, "auto-generated" for the rest;
    # "no" (header omitted) for mail a human wrote, such as a relayed agent reply.
    auto_submitted: str = "auto-replied"
    loop_marker: str | None = None  # X-Loop value: our support address
    extra_headers: tuple[tuple[str, str], ...] = ()


def build_environment(override_dir: Path | None = None) -> jinja2.Environment:
    """A Jinja2 environment: templates in ``override_dir`` win over the packaged ones.

    HTML templates (``*.html.j2``) are autoescaped, text templates are not; an undefined
    context key is an error rather than an empty string.
    """
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(override_dir))
    loaders.append(jinja2.PackageLoader("notifications", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["local"] = _local_filter
    return env


def local_time(at: datetime | str | None, zone: str) -> str:
    """``at`` as read in time zone ``zone``, e.g. "Mon 07 Dec 2026 14:00 CET".

    ``at`` is an aware time or its ISO 8601 text, as outbox contexts carry it; one
    without an offset is UTC (times are UTC in storage). No time (None or "") is
    :data:`NO_TIME`. In templates this is the ``local`` filter: ``{{ due_at | local(tz) }}``.

    Raises:
        ValueError: ``at`` is not ISO 8601, or ``zone`` names no time zone.
    """
    if at is None or (isinstance(at, str) and not at):
        return NO_TIME
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        tz = ZoneInfo(zone)
    except ZoneInfoNotFoundError as exc:  # a KeyError, for a name the database lacks
        raise ValueError(f"unknown time zone {zone!r}") from exc
    return moment.astimezone(tz).strftime(LOCAL_TIME_FORMAT)


@dataclass(frozen=True)
class _FormattedBefore:
    """The zone argument of a time a row queued before the ``local`` filter had formatted."""

    text: str


def _local_filter(at: datetime | str | None, zone: str | _FormattedBefore) -> str:
    if isinstance(zone, _FormattedBefore):
        return zone.text
    return local_time(at, zone)


def _with_local_times(context: Mapping[str, Any]) -> dict[str, Any]:
    """``context`` with its local times in both shapes, the filter's and the earlier one.

    A row queued before the ``local`` filter holds each time formatted, under the keys of
    :data:`_FORMATTED_TIMES` and without a zone: its zone key is set so that ``local``
    gives that text back. A newer row holds the time and the zone: the formatted key is
    added, so that an override template written for the earlier context still renders.
    """
    full = dict(context)
    for formatted, time_key, zone_key in _FORMATTED_TIMES:
        if formatted in context and zone_key not in context:
            full[zone_key] = _FormattedBefore(str(context[formatted]))
            full.setdefault(time_key, None)
        elif formatted not in context and zone_key in context and time_key in context:
            full[formatted] = local_time(context[time_key], context[zone_key])
    return full


def render_mail(
    env: jinja2.Environment,
    template: str,
    context: Mapping[str, Any],
    envelope: Envelope,
    *,
    now: datetime,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> EmailMessage:
    """Render ``<template>.txt.j2`` (and ``<template>.html.j2`` if there is one) into a mail.

    Args:
        env: from :func:`build_environment`.
        template: the template's base name, e.g. ``"ack"``.
        context: the template's variables.
        envelope: headers; CR/LF in any value becomes a space, so nothing can inject a header.
        now: the Date header (aware).
        attachments: ``(filename, content_type, data)`` to attach after the body.

    Raises:
        RenderError: the text template is missing, a template fails, or a header is unusable.
    """
    try:
        context = _with_local_times(context)
    except (ValueError, TypeError) as exc:  # a time or zone the row holds is unusable
        raise RenderError(f"{type(exc).__name__}: {exc}", template=template) from exc
    text = _render(env, f"{template}.txt.j2", context)
    html = _render(env, f"{template}.html.j2", context, is_optional=True)
    msg = EmailMessage(policy=MAIL_POLICY)
    try:
        _set_headers(msg, envelope, now)
    except ValueError as exc:  # a duplicate unique header or a bad header name
        raise RenderError(str(exc), template=template) from exc
    _set_body(msg, text, html)
    for filename, content_type, data in attachments:
        _attach(msg, filename, content_type, data)
    return msg


@overload
def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str: ...
@overload
def _render(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], *, is_optional: bool
) -> str | None: ...
def _render(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], *, is_optional: bool = False
) -> str | None:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        # Only the template itself may be absent; a missing {% include %} is a broken one.
        if is_optional and exc.name == name:
            return None
        raise RenderError(f"template not found: {exc.name}", template=name) from exc
    # Templates can come from an operator's override directory: whatever one raises
    # (TypeError in a filter, a missing key, a syntax error) is that template's fault.
    except Exception as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}", template=name) from exc


def _one_line(value: str) -> str:
    return _LINE_BREAKS.sub(" ", value)


def _set_headers(msg: EmailMessage, envelope: Envelope, now: datetime) -> None:
    """Set the envelope's headers on ``msg``, CR/LF and other line breaks made spaces.

    A value that the stdlib would store and fold back to exactly the text given (printable
    ASCII, single spaces, no ``=?`` that reads as an encoded word, no quoting needed, its
    lines within the policy's length so ``policy.fold`` writes it as is) is stored with
    ``set_raw``: the policy would otherwise parse it when stored and refold it on every
    serialization, for the same bytes. Any other value (non-ASCII, long, odd) takes the
    structured path: Address objects, RFC 2047 encoded words, the stdlib's folding.
    """
    _put_address(msg, "From", envelope.from_addr, envelope.from_name)
    _put_addresses(msg, "To", envelope.to)
    if envelope.cc:
        _put_addresses(msg, "Cc", envelope.cc)
    if envelope.reply_to:
        _put_address(msg, "Reply-To", envelope.reply_to)
    _put_text(msg, "Subject", _one_line(envelope.subject))
    _put_text(msg, "Date", format_datetime(now.astimezone(UTC)))
    _put_ids(msg, "Message-ID", (_one_line(envelope.message_id),))
    if envelope.in_reply_to:
        _put_ids(msg, "In-Reply-To", (_one_line(envelope.in_reply_to),))
    if envelope.references:
        _put_ids(msg, "References", tuple(_one_line(ref) for ref in envelope.references))
    if envelope.auto_submitted.strip().lower() != "no":
        _put_text(msg, "Auto-Submitted", _one_line(envelope.auto_submitted))
        # Exchange and Outlook honour this rather than Auto-Submitted: no out-of-office
        # or read receipt comes back to a robot that would answer it in turn.
        _put_text(msg, "X-Auto-Response-Suppress", "All")
    if envelope.loop_marker:
        _put_text(msg, "X-Loop", _one_line(envelope.loop_marker))
    for name, value in envelope.extra_headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _REGISTERED:  # a structured or unique header: counted, parsed
            msg[name] = _one_line(value)
        else:
            _put_text(msg, name, _one_line(value))


def _put_text(msg: EmailMessage, name: str, value: str) -> None:
    """Set unstructured ``name``; ``value`` has been through :func:`_one_line`."""
    if _PLAIN_TEXT.fullmatch(value) and _is_raw_safe(name, value):
        msg.set_raw(name, value)
    else:
        msg[name] = value


def _put_ids(msg: EmailMessage, name: str, ids: tuple[str, ...]) -> None:
    """Set a header of message ids, folded between ids as :class:`_MessageIdListHeader` does."""
    if all(_PLAIN_ID.fullmatch(one) for one in ids):
        first, *rest = _fold_ids(name, ids, _MAX_LINE)
        folded = "\n".join([first.removeprefix(f"{name}: "), *rest])
        if _is_raw_safe(name, folded):
            msg.set_raw(name, folded)
            return
    msg[name] = " ".join(ids)


def _put_address(msg: EmailMessage, name: str, addr: str, display_name: str = "") -> None:
    addr, display_name = _one_line(addr).strip(), _one_line(display_name).strip()
    if _PLAIN_ADDR.fullmatch(addr) and (not display_name or _PLAIN_NAME.fullmatch(display_name)):
        value = f"{display_name} <{addr}>" if display_name else addr
        if _is_raw_safe(name, value):
            msg.set_raw(name, value)
            return
    msg[name] = _address(addr, display_name)


def _put_addresses(msg: EmailMessage, name: str, addrs: Sequence[str]) -> None:
    cleaned = [_one_line(addr).strip() for addr in addrs]
    if cleaned and all(_PLAIN_ADDR.fullmatch(addr) for addr in cleaned):
        value = ", ".join(cleaned)
        if _is_raw_safe(name, value):
            msg.set_raw(name, value)
            return
    msg[name] = _addresses(addrs)


def _is_raw_safe(name: str, folded: str) -> bool:
    """Whether ``folded`` may be stored unparsed, to be written exactly as it is.

    ``folded`` is one line, or lines joined by LF each after the first starting with a
    space (a continuation). The lines may hold nothing but printable ASCII and spaces (no
    CR, no other line break: only our own LFs, each followed by a space, so no new header
    line can start), no encoded-word lookalike, and none may be longer than the limit
    under which ``policy.fold`` rejoins them with its line separator without reparsing.
    """
    first, *rest = folded.split("\n")
    return (
        "=?" not in folded
        and bool(_RAW_LINE.fullmatch(first))
        and len(name) + 2 + len(first) <= _MAX_LINE
        and all(
            _RAW_LINE.fullmatch(line) and line.startswith(" ") and line.strip() for line in rest
        )
        and all(len(line) <= _MAX_LINE for line in rest)
    )


def _set_body(msg: EmailMessage, text: str, html: str | None) -> None:
    """What ``set_content(text)`` and ``add_alternative(html)`` make, built directly.

    The same headers in the same order (the stdlib's stray MIME-Version in the HTML part
    included) and the same quoted-printable bytes; but each header is made once rather
    than stored, parsed back, rewritten with its parameter and parsed again, and the
    boundary is picked here, so the returned message already carries it: the generator
    would pick it at the first serialization, compiling a regular expression per mail to
    look for it in the parts.
    """
    if any(name.lower().startswith("content-") or name.lower() == "mime-version" for name in msg):
        # An extra header the stdlib would move into the first part or keep: its own way.
        msg.set_content(text, cte="quoted-printable")
        if html is not None:
            msg.add_alternative(html, subtype="html", cte="quoted-printable")
        return
    if html is None:
        _set_text(msg, text, "plain")
        msg.set_raw("MIME-Version", "1.0")
        return
    plain, rich = EmailMessage(policy=MAIL_POLICY), EmailMessage(policy=MAIL_POLICY)
    payloads = _set_text(plain, text, "plain"), _set_text(rich, html, "html")
    rich.set_raw("MIME-Version", "1.0")
    boundary = _boundary(*payloads)
    msg.set_raw("MIME-Version", "1.0")
    msg.set_raw(
        "Content-Type", _HEADERS("Content-Type", f'multipart/alternative; boundary="{boundary}"')
    )
    msg.attach(plain)
    msg.attach(rich)


def _set_text(part: EmailMessage, content: str, subtype: str) -> str:
    """Make ``part`` ``content`` in utf-8 quoted-printable, as set_content does it.

    The encoding is email.contentmanager's for ``cte="quoted-printable"``: lines split as
    str.splitlines() does on the UTF-8 bytes, joined by LF, then quoprimime at the
    policy's line length.

    Returns:
        The encoded payload.
    """
    part.set_raw("Content-Type", _TEXT_TYPES[subtype])
    part.set_raw("Content-Transfer-Encoding", _QUOTED_PRINTABLE)
    body = b"\n".join(content.encode("utf-8").splitlines()) + b"\n"
    payload = quoprimime.body_encode(body.decode("latin-1"), _MAX_LINE)
    part.set_payload(payload)
    return payload


def _boundary(*payloads: str) -> str:
    """A multipart boundary in email.generator's form that is in none of ``payloads``.

    Quoted-printable writes every "=" as "=3D", so a line of this "==" form cannot occur
    in such a body; the check costs little and does not rest on that.
    """
    while True:
        boundary = f"{'=' * 15}{secrets.randbelow(sys.maxsize):0{_BOUNDARY_DIGITS}d}=="
        if not any(boundary in payload for payload in payloads):
            return boundary


def _address(addr: str, name: str = "") -> Address | str:
    """A structured address; an unparseable one is kept as one harmless line of text."""
    addr, name = _one_line(addr).strip(), _one_line(name).strip()
    try:
        return Address(display_name=name, addr_spec=addr)
    # The stdlib parser signals a bad addr-spec with any of these; the relay will then
    # refuse the recipient and the row fails with its answer.
    except (ValueError, IndexError, HeaderParseError):
        return addr


def _addresses(addrs: Sequence[str]) -> list[Address] | str:
    parsed = [_address(addr) for addr in addrs]
    if all(isinstance(one, Address) for one in parsed):
        return [one for one in parsed if isinstance(one, Address)]
    return ", ".join(str(one) for one in parsed)


def _attach(msg: EmailMessage, filename: str, content_type: str, data: bytes) -> None:
    maintype, subtype = "application", "octet-stream"
    if _MIME_TYPE.fullmatch(content_type):
        main, sub = content_type.lower().split("/")
        # multipart/* and message/* describe structure, not bytes: sending those bytes
        # under such a type would make the receiver re-parse them as our own parts.
        if main not in {"multipart", "message"}:
            maintype, subtype = main, sub
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=_one_line(filename))
