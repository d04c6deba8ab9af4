"""Rendering of outgoing mail: Jinja2 templates and an envelope into an EmailMessage."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC
from email import policy as email_policy
from email.errors import HeaderParseError
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UniqueUnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

import jinja2

from notifications.errors import RenderError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime
    from email.policy import Policy
    from pathlib import Path

# str.splitlines() breaks on all of these, so any of them in a header value could start a
# new line somewhere down the road; CR and LF are the ones that inject headers over SMTP.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII but the colon
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.+=_-]+")
_MIME_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


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
        lines = [f"{self.name}:"]
        for word in words:
            if len(lines[-1]) > len(self.name) + 1 and (
                len(lines[-1]) + 1 + len(word) > (policy.max_line_length or 78)
            ):
                lines.append("")
            lines[-1] += f" {word}"
        return policy.linesep.join(lines) + policy.linesep


def _mail_policy() -> Policy:
    registry = HeaderRegistry()
    registry.map_to_type("in-reply-to", _MessageIdListHeader)
    registry.map_to_type("references", _MessageIdListHeader)
    return email_policy.default.clone(header_factory=registry)


# LF line endings: what a maildir holds; smtplib turns them into CRLF on the wire.
MAIL_POLICY = _mail_policy()


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
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def make_message_id(domain: str, token: str) -> str:
    """A new Message-ID ``<token.random@domain>``.

    The random part comes from ``secrets``: the one thing in this module that is not a
    function of its arguments, so callers store the id and reuse it on every attempt.
    """
    token = _ID_UNSAFE.sub("-", token).strip(".") or "mail"
    domain = _ID_UNSAFE.sub("-", domain).strip(".") or "localhost"
    return f"<{token}.{secrets.token_hex(8)}@{domain}>"


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
    text = _render(env, f"{template}.txt.j2", context)
    html = _render(env, f"{template}.html.j2", context, is_optional=True)
    msg = EmailMessage(policy=MAIL_POLICY)
    try:
        _set_headers(msg, envelope, now)
    except ValueError as exc:  # a duplicate unique header or a bad header name
        raise RenderError(str(exc), template=template) from exc
    msg.set_content(text, cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
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
    msg["From"] = _address(envelope.from_addr, envelope.from_name)
    msg["To"] = _addresses(envelope.to)
    if envelope.cc:
        msg["Cc"] = _addresses(envelope.cc)
    if envelope.reply_to:
        msg["Reply-To"] = _address(envelope.reply_to)
    msg["Subject"] = _one_line(envelope.subject)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = _one_line(envelope.message_id)
    if envelope.in_reply_to:
        msg["In-Reply-To"] = _one_line(envelope.in_reply_to)
    if envelope.references:
        msg["References"] = " ".join(_one_line(ref) for ref in envelope.references)
    if envelope.auto_submitted.strip().lower() != "no":
        msg["Auto-Submitted"] = _one_line(envelope.auto_submitted)
        # Exchange and Outlook honour this rather than Auto-Submitted: no out-of-office
        # or read receipt comes back to a robot that would answer it in turn.
        msg["X-Auto-Response-Suppress"] = "All"
    if envelope.loop_marker:
        msg["X-Loop"] = _one_line(envelope.loop_marker)
    for name, value in envelope.extra_headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        msg[name] = _one_line(value)


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
