"""render_mail writes the same mail as the stdlib's structured path it replaced.

render_mail stores the header values it can write as they are with ``set_raw`` and builds
the text/html alternative by hand. The reference below is the code it replaced (commit
ecccbc8): every header through ``msg[name] = value`` (parsed, refolded by the policy),
the body through ``set_content`` and ``add_alternative``. Both must give the same bytes,
the multipart boundaries (random in both) aside, for ordinary and hostile envelopes.
"""

from __future__ import annotations

import io
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry, UniqueUnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pytest

from notifications import render
from notifications.errors import RenderError
from notifications.render import Envelope, build_environment, render_mail
from tests.unit.notifications.test_render import ACK_CONTEXT

if TYPE_CHECKING:
    from collections.abc import Sequence
    from email.policy import Policy
    from pathlib import Path

    import jinja2

NOW = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
BOUNDARY = re.compile(rb"={15}\d{19}==(?:\.\d+)?")
BOUNDARY_PARAM = re.compile(r'; boundary="={15}\d{19}==(?:\.\d+)?"')
INJECTIONS = (
    "\r\nBcc: evil@attacker.example",
    "\nBcc: evil@attacker.example",
    "\rBcc: evil@attacker.example",
    "\u2028Bcc: evil@attacker.example",
    "\r\n\r\nBcc: evil@attacker.example",
    "\x85X-Injected: 1",
    "\r\n X-Injected: 1",
)


# ---- the reference: render_mail's header and body code before set_raw ------------------


class _OldMessageIdListHeader(UniqueUnstructuredHeader, BaseHeader):
    max_count: ClassVar[Literal[1]] = 1

    def fold(self, *, policy: Policy) -> str:
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


def _reference_policy() -> Policy:
    registry = HeaderRegistry()
    registry.map_to_type("in-reply-to", _OldMessageIdListHeader)
    registry.map_to_type("references", _OldMessageIdListHeader)
    return policy.default.clone(header_factory=registry)


REFERENCE_POLICY = _reference_policy()


def _reference_set_headers(msg: EmailMessage, envelope: Envelope, now: datetime) -> None:
    one_line, address, addresses = render._one_line, render._address, render._addresses
    msg["From"] = address(envelope.from_addr, envelope.from_name)
    msg["To"] = addresses(envelope.to)
    if envelope.cc:
        msg["Cc"] = addresses(envelope.cc)
    if envelope.reply_to:
        msg["Reply-To"] = address(envelope.reply_to)
    msg["Subject"] = one_line(envelope.subject)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = one_line(envelope.message_id)
    if envelope.in_reply_to:
        msg["In-Reply-To"] = one_line(envelope.in_reply_to)
    if envelope.references:
        msg["References"] = " ".join(one_line(ref) for ref in envelope.references)
    if envelope.auto_submitted.strip().lower() != "no":
        msg["Auto-Submitted"] = one_line(envelope.auto_submitted)
        msg["X-Auto-Response-Suppress"] = "All"
    if envelope.loop_marker:
        msg["X-Loop"] = one_line(envelope.loop_marker)
    for name, value in envelope.extra_headers:
        if not render._HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        msg[name] = one_line(value)


def reference_render(
    env: jinja2.Environment,
    template: str,
    context: dict[str, Any],
    envelope: Envelope,
    *,
    now: datetime,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> EmailMessage:
    """render_mail as of commit ecccbc8."""
    text = render._render(env, f"{template}.txt.j2", context)
    html = render._render(env, f"{template}.html.j2", context, is_optional=True)
    msg = EmailMessage(policy=REFERENCE_POLICY)
    try:
        _reference_set_headers(msg, envelope, now)
    except ValueError as exc:
        raise RenderError(str(exc), template=template) from exc
    msg.set_content(text, cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
    for filename, content_type, data in attachments:
        render._attach(msg, filename, content_type, data)
    return msg


# ---- comparison --------------------------------------------------------------------------


def smtp_bytes(msg: EmailMessage) -> bytes:
    """The bytes smtplib.send_message puts on the wire for ``msg`` (ASCII envelope)."""
    with io.BytesIO() as out:
        BytesGenerator(out).flatten(msg, linesep="\r\n")
        return out.getvalue()


def without_boundaries(data: bytes) -> bytes:
    """``data`` with each multipart boundary replaced by its rank of first appearance."""
    seen: dict[bytes, bytes] = {}
    return BOUNDARY.sub(lambda m: seen.setdefault(m[0], b"BOUNDARY-%d" % len(seen)), data)


def header_values(msg: EmailMessage) -> list[tuple[str, str]]:
    """Every header of every part, as a reader of the message object sees it.

    Without the boundary parameter: render_mail now picks it, the stdlib's generator
    only when it first serializes the message.
    """
    return [
        (name, BOUNDARY_PARAM.sub("", str(value)))
        for part in msg.walk()
        for name, value in part.items()
    ]


def assert_same_mail(
    env: jinja2.Environment,
    template: str,
    context: dict[str, Any],
    envelope: Envelope,
    *,
    now: datetime = NOW,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes | None:
    """Render with both; the same error, or the same mail. Returns the new SMTP bytes."""
    results: list[EmailMessage | Exception] = []
    for renderer in (reference_render, render_mail):
        try:
            results.append(
                renderer(env, template, context, envelope, now=now, attachments=attachments)
            )
        except Exception as exc:  # noqa: BLE001 - whatever it is, both must raise it
            results.append(exc)
    old, new = results
    if isinstance(old, Exception):
        assert type(new) is type(old), (old, new)
        assert str(new) == str(old)
        return None
    assert isinstance(new, EmailMessage), new

    # Reading the returned message gives the same values (before serializing: the
    # generator writes the boundary it picks into the reference message).
    assert header_values(new) == header_values(old)
    assert [part.get_content_type() for part in new.walk()] == [
        part.get_content_type() for part in old.walk()
    ]

    # The same bytes, in the maildir's LF form and in the CRLF form smtplib sends; or the
    # same error (the stdlib cannot write a non-ASCII Message-ID, say).
    try:
        old_bytes, old_wire = old.as_bytes(), smtp_bytes(old)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the new mail must raise it
        with pytest.raises(type(exc)):
            new.as_bytes()
        with pytest.raises(type(exc)):
            smtp_bytes(new)
        return None
    assert without_boundaries(new.as_bytes()) == without_boundaries(old_bytes)
    wire = smtp_bytes(new)
    assert without_boundaries(wire) == without_boundaries(old_wire)

    # A receiver decodes the same header values from each.
    parsed_new = message_from_bytes(wire, policy=policy.default)
    parsed_old = message_from_bytes(old_wire, policy=policy.default)
    assert isinstance(parsed_new, EmailMessage)
    assert isinstance(parsed_old, EmailMessage)
    for part_new, part_old in zip(parsed_new.walk(), parsed_old.walk(), strict=True):
        assert list(part_new.keys()) == list(part_old.keys())
        for name in set(part_new.keys()):
            if name.lower() == "content-type" and part_new.get_content_maintype() == "multipart":
                assert part_new.get_content_type() == part_old.get_content_type()
                continue
            decoded_new = [str(v) for v in part_new.get_all(name, [])]
            assert decoded_new == [str(v) for v in part_old.get_all(name, [])], name
        if not part_new.is_multipart():
            assert part_new.get_payload(decode=True) == part_old.get_payload(decode=True)

    assert_well_formed(wire)
    return wire


def assert_well_formed(wire: bytes) -> None:
    """CRLF line ends only, no line over 998 bytes, and nothing injected became a header."""
    assert b"\r" not in wire.replace(b"\r\n", b"")
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert max(len(line) for line in wire.split(b"\r\n")) <= 998
    parsed = message_from_bytes(wire, policy=policy.default)
    for part in parsed.walk():
        names = {name.lower() for name in part}
        assert not names & {"bcc", "x-injected"}, names
    head = wire.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = re.sub(r"\r\n[ \t]", " ", head).split("\r\n")
    assert not [line for line in lines if line.lower().startswith(("bcc:", "x-injected:"))]


# ---- cases -------------------------------------------------------------------------------


def envelope(**overrides: Any) -> Envelope:
    """A typical acknowledgement's envelope with ``overrides``."""
    refs = tuple(f"<CAF{i:03d}x7Qm+ZqK9yT0bLwQeA{i}@mail.customer.example>" for i in range(3))
    values: dict[str, Any] = {
        "from_name": "Example Support",
        "from_addr": "support@example.com",
        "to": ("ann@customer.example",),
        "reply_to": "support@example.com",
        "subject": "[#1042] Database down",
        "message_id": "<ack-1042.5f3c2a9d0e1b4c7a@example.com>",
        "in_reply_to": refs[-1],
        "references": refs,
        "loop_marker": "support@example.com",
    }
    return Envelope(**(values | overrides))


LONG_REFS = tuple(
    f"<CAH{i:02d}x+ZqK9yT0bLwQeA8vB3nM1cD5fG7hJ2kL4pR6sT8uV0wX2yZ4=@mail.gmail.com>"
    for i in range(20)
)
HUGE_REFS = tuple(f"<{i}.{'x' * 90}@customer.example>" for i in range(5))

CASES: dict[str, dict[str, Any]] = {
    "typical": {},
    "no threading": {"in_reply_to": None, "references": ()},
    "in-reply-to only": {"references": ()},
    "20 long references": {"references": LONG_REFS, "in_reply_to": LONG_REFS[-1]},
    "references longer than a line": {"references": HUGE_REFS, "in_reply_to": HUGE_REFS[-1]},
    "non-ascii reference": {"references": ("<ü@example.com>", "<a@b>")},
    "reference without brackets": {"references": ("a@b", "<c@d>")},
    "empty reference": {"references": ("", "<c@d>")},
    "cc and no reply-to": {"cc": ("b@customer.example", "c@customer.example"), "reply_to": None},
    "cc longer than a line": {"cc": tuple(f"person{i}@customer.example" for i in range(8))},
    "no recipients": {"to": ()},
    "unparseable recipient": {"to": ("no-at-sign",), "cc": ("odd..dots@example.com",)},
    "quoted local part": {"to": ('"ann lee"@customer.example',)},
    "domain literal": {"to": ("ann@[192.0.2.1]",)},
    "non-ascii address": {"to": ("zoë@exämple.com",)},
    "padded addresses": {"to": (" ann@customer.example ",), "reply_to": " r@example.com "},
    "encoded-word lookalike address": {"to": ("=?x?=@example.com",)},
    "very long address": {"to": ("a" * 80 + "@customer.example",)},
    "non-ascii display name": {"from_name": "Zoë's Support, Inc"},
    "display name with specials": {"from_name": "Example Support (EU), Inc."},
    "display name with quotes": {"from_name": 'The "Best" Support'},
    "display name encoded-word lookalike": {"from_name": "=?utf-8?q?Evil?="},
    "display name spaces and tab": {"from_name": "  Example   Support\t "},
    "long display name": {"from_name": "Example Support " * 8},
    "cjk display name": {"from_name": "日本語サポート"},
    "empty display name": {"from_name": ""},
    "non-ascii subject": {"subject": "[#1042] Base de données indisponible — ça presse"},
    "empty subject": {"subject": ""},
    "double spaces in subject": {"subject": "Re:  Fwd:   Hello  world "},
    "encoded-word lookalike subject": {"subject": "=?utf-8?q?encoded?= look"},
    "subject with tab and controls": {"subject": "tab\there \x00 nul \x7f del"},
    "long subject": {"subject": "[#1042] " + "word " * 60},
    "long subject without spaces": {"subject": "[#1042] " + "x" * 300},
    "long non-ascii subject": {"subject": "[#1042] " + "données " * 40},
    "subject exactly at the limit": {"subject": "s" * (78 - len("Subject: "))},
    "subject one over the limit": {"subject": "s" * (79 - len("Subject: "))},
    "odd message id": {"message_id": "no-brackets@example.com"},
    "message id with space": {"message_id": "<a b@example.com>"},
    "long message id": {"message_id": "<" + "x" * 100 + "@example.com>"},
    "non-ascii message id": {"message_id": "<ü@example.com>"},  # neither can write it
    "auto-generated": {"auto_submitted": "auto-generated"},
    "human mail": {"auto_submitted": "no", "loop_marker": None},
    "auto-submitted with parameter": {"auto_submitted": "auto-replied; owner-email=a@b"},
    "extra headers": {"extra_headers": (("X-Case", "1042"), ("X-Priority", "1 (Highest)"))},
    "extra header non-ascii value": {"extra_headers": (("X-Note", "déjà vu"),)},
    "extra header long value": {"extra_headers": (("X-Long", "word " * 40),)},
    "extra header empty value": {"extra_headers": (("X-Empty", ""),)},
    "extra content header": {"extra_headers": (("Content-Language", "en"),)},
    "extra mime-version": {"extra_headers": (("MIME-Version", "1.0"),)},
    "extra duplicate subject": {"extra_headers": (("Subject", "again"),)},
    "extra duplicate references": {"extra_headers": (("References", "<x@y>"),)},
    "extra second x-loop": {"extra_headers": (("X-Loop", "other@example.com"),)},
    "extra bad name": {"extra_headers": (("X Bad", "1"),)},
    "extra non-ascii name": {"extra_headers": (("X-Ünicode", "1"),)},
}
for _i, _injection in enumerate(INJECTIONS):
    CASES[f"injection {_i} everywhere"] = {
        "from_name": f"Support{_injection}",
        "from_addr": f"support@example.com{_injection}",
        "to": (f"ann@customer.example{_injection}", "b@customer.example"),
        "cc": (f"c@customer.example{_injection}",),
        "reply_to": f"support@example.com{_injection}",
        "subject": f"Hello{_injection}",
        "message_id": f"<a@b>{_injection}",
        "in_reply_to": f"<c@d>{_injection}",
        "references": (f"<e@f>{_injection}", "<g@h>"),
        "auto_submitted": f"auto-replied{_injection}",
        "loop_marker": f"support@example.com{_injection}",
        "extra_headers": (("X-Case", f"1042{_injection}"),),
    }
    CASES[f"injection {_i} in subject"] = {"subject": f"[#1042] Hello{_injection}"}
    CASES[f"injection {_i} in a reference"] = {"references": (f"<a@b>{_injection}",)}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_same_mail_as_the_structured_path(overrides: dict[str, Any]) -> None:
    """The packaged ack (text + HTML) with each envelope: same bytes and decoded values."""
    assert_same_mail(build_environment(), "ack", ACK_CONTEXT, envelope(**overrides))


@pytest.fixture
def body_env(tmp_path: Path) -> jinja2.Environment:
    """Templates that are exactly their context: ``both`` (text + HTML) and ``solo``."""
    (tmp_path / "both.txt.j2").write_text("{{ text }}", encoding="utf-8")
    (tmp_path / "both.html.j2").write_text("{{ html }}", encoding="utf-8")
    (tmp_path / "solo.txt.j2").write_text("{{ text }}", encoding="utf-8")
    return build_environment(tmp_path)


BODIES = (
    "",
    "Hello\n",
    "Zoë says hi\r\nline2\rline3\n",
    "x" * 200 + "\n" + "y" * 77 + "=\n",
    "a = b; c == d\n=3D\n",
    "trailing space \nand tab\t\n \n",
    ".\nFrom me\n..\n",
    "--===============1234567890123456789==\n--===============1234567890123456789==--\n",
    "\u2028 odd \x00 nul \x0c form feed\n",
    "é" * 100 + "\n",
    "no final newline",
    "\r\n\r\n\n",
)


@pytest.mark.parametrize("template", ["both", "solo"])
@pytest.mark.parametrize("body", BODIES)
def test_same_body_as_set_content(body_env: jinja2.Environment, template: str, body: str) -> None:
    """Hand-built parts: the quoted-printable bytes and headers set_content makes."""
    context = {"text": body, "html": f"<p>{body}</p>"}
    assert_same_mail(body_env, template, context, envelope())


ATTACHMENTS: tuple[list[tuple[str, str, bytes]], ...] = (
    [("report.pdf", "application/pdf", b"%PDF-1.4")],
    [("x\r\n.bin", "bogus", b"\0"), ("naïve résumé.txt", "text/plain", b"hi\n")],
    [("a" * 200 + ".txt", "text/plain", b"x"), ('quo"te;.txt', "application/json", b"{}")],
    [("=?utf-8?q?x?=.txt", "multipart/mixed", b"--x\n"), ("", "text/plain", b"")],
    [(f"name{INJECTIONS[0]}.txt", "text/plain", b"a"), (f"n{INJECTIONS[3]}", "image/png", b"")],
)


@pytest.mark.parametrize("template", ["both", "solo"])
@pytest.mark.parametrize("attachments", ATTACHMENTS)
def test_same_mail_with_attachments(
    body_env: jinja2.Environment, template: str, attachments: list[tuple[str, str, bytes]]
) -> None:
    """Attachments after the hand-built body: the same multipart/mixed as before."""
    context = {"text": "Hello Zoë\n", "html": "<p>Hello Zoë</p>"}
    assert_same_mail(body_env, template, context, envelope(), attachments=attachments)


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        datetime(2026, 3, 29, 1, 30, 59, 999999, tzinfo=timezone(timedelta(hours=2))),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    ],
)
def test_same_date(now: datetime) -> None:
    """The Date header is written as the stdlib would write it."""
    assert_same_mail(build_environment(), "ack", ACK_CONTEXT, envelope(), now=now)


POOLS: dict[str, tuple[Any, ...]] = {
    "from_name": ("", "Example Support", "Zoë", "A. B. (C)", "=?x?= y", " Support ", "x" * 90),
    "from_addr": ("support@example.com", "s.t+u@example.com", "bad", "a@b@c", "ü@example.com"),
    "to": (
        ("ann@customer.example",),
        ("a@x.example", "b@y.example"),
        tuple(f"p{i}@customer.example" for i in range(6)),
        ("Ann <ann@customer.example>",),
        ("",),
    ),
    "cc": ((), ("c@customer.example",), ("bad address",)),
    "reply_to": (None, "", "support@example.com", "r <r@example.com>"),
    "subject": (
        "[#1042] Database down",
        "Re: [#1042] Database down",
        "Ünïcode",
        "x " * 50,
        "a" * 75,
        "=?utf-8?b?QQ==?=",
        "  lead and trail  ",
        '(comment) "quoted" \\back',
    ),
    "message_id": ("<ack-1042.abc@example.com>", "<a@b>", "plain", "<" + "m" * 70 + "@e>"),
    "in_reply_to": (None, "", "<orig@customer.example>", "<" + "i" * 80 + "@e>", "<ü@e>"),
    "references": ((), LONG_REFS, LONG_REFS[:3], HUGE_REFS[:2], ("<a@b>", "x y", "<c@d>")),
    "auto_submitted": ("auto-replied", "auto-generated", "no", " NO ", "auto-replied; x=y"),
    "loop_marker": (None, "", "support@example.com", "loop marker with spaces"),
    "extra_headers": ((), (("X-Case", "1042"),), (("X-A", "é"), ("X-B", "b " * 50))),
}
ALPHABET = "aZ09 .,;:<>@\"'()[]\\=?_-+/\t\r\n\u2028\x85éü日"


def test_random_envelopes_give_the_same_mail() -> None:
    """Envelopes drawn from the pools above, and random values, for good measure."""
    rng = random.Random(20261130)
    env = build_environment()
    for _ in range(150):
        values = {field: rng.choice(pool) for field, pool in POOLS.items()}
        field = rng.choice(["from_name", "subject", "message_id", "in_reply_to", "loop_marker"])
        values[field] = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 100)))
        assert_same_mail(env, "ack", ACK_CONTEXT, Envelope(**values))


def test_references_are_one_id_per_line_and_stored_raw() -> None:
    """Our own ids are stored pre-folded (no parse) and go out folded between ids."""
    msg = render_mail(
        build_environment(),
        "ack",
        ACK_CONTEXT,
        envelope(references=LONG_REFS, in_reply_to=LONG_REFS[-1]),
        now=NOW,
    )
    raw = dict(msg.raw_items())
    assert isinstance(raw["References"], str)
    assert isinstance(raw["Subject"], str)
    wire = smtp_bytes(msg)
    head = wire.split(b"\r\n\r\n", 1)[0].decode("ascii")
    folded = re.search(r"^References:.*?(?=\r\n\S)", head, re.MULTILINE | re.DOTALL)
    assert folded is not None
    assert folded[0].split("\r\n") == [
        f"References: {LONG_REFS[0]}",
        *(f" {ref}" for ref in LONG_REFS[1:]),
    ]
    assert message_from_bytes(wire, policy=policy.default)["References"].split() == list(LONG_REFS)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_a_raw_value_with_a_line_break_is_refused(injection: str) -> None:
    """The guard before set_raw: any line break but our own LF + space is refused."""
    assert render._is_raw_safe("X-Case", "1042")
    assert render._is_raw_safe("References", "<a@b>\n <c@d>")
    assert not render._is_raw_safe("X-Case", f"1042{injection}")
    assert not render._is_raw_safe("References", "<a@b>\n<c@d>")
    assert not render._is_raw_safe("References", "<a@b>\n \n <c@d>")
    assert not render._is_raw_safe("X-Case", "=?utf-8?q?x?=")
