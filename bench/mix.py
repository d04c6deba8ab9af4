"""A seeded, deterministic mix of support mails as raw bytes (the performance issue's mix)."""

from __future__ import annotations

import argparse
import base64
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

SUPPORT = "support@example.com"
ATTACHMENT_SHARE = 0.10
CHARSET_SHARE = 0.15
REPLY_SHARE = 0.25
ALTERNATIVE_SHARE = 0.5
ATTACHMENT_BYTES = (50_000, 500_000)
EPOCH = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)

# Text a customer in each charset might write; every line encodes in its charset.
# ruff: noqa: RUF001 - the look-alike characters are the point of these strings
FOREIGN = {
    "iso-8859-1": ("Le serveur ne répond plus", "Bonjour, depuis ce matin l'accès échoue. Merci."),
    "windows-1252": ("Export “broken” again", "Hi – the €-invoices export fails … again."),
    "iso-2022-jp": ("ログインできません", "お世話になっております。本番環境にログインできません。"),
    "koi8-r": ("Не работает экспорт", "Здравствуйте! Экспорт отчётов не работает с утра."),
    "gb2312": ("无法登录系统", "您好，我们从今天早上开始无法登录生产系统。"),
    "iso-8859-2": ("Nie działa logowanie", "Dzień dobry, logowanie nie działa od rana."),
}
TOPICS = (
    "Cannot log in to the dashboard",
    "Export to CSV produces an empty file",
    "How do I add a second administrator?",
    "API returns 502 for every request",
    "Feature request: dark mode",
    "Invoices show the wrong currency",
    "Sync with the staging environment is slow",
    "Production database reports corrupted rows",
)
SENTENCES = (
    "We noticed this after the update yesterday.",
    "It happens for all users in our team.",
    "Is there a workaround we could use meanwhile?",
    "The error message says the session expired.",
    "Could you tell us when this will be fixed?",
    "We attached a screenshot of the screen we see.",
    "This blocks the monthly closing for our finance team.",
    "Only the staging environment is affected so far.",
)


@dataclass(frozen=True)
class _Sent:
    """An earlier mail a reply can thread onto."""

    message_id: str
    sender: str
    subject: str
    charset: str


@dataclass(frozen=True)
class MixStats:
    """What a generated mix holds, to print next to the figures."""

    messages: int
    total_bytes: int
    with_attachment: int
    non_utf8: int
    replies: int
    alternative: int


def generate(count: int = 1000, seed: int = 8, *, attachments: bool = True) -> list[bytes]:
    """``count`` raw messages (CRLF line ends), identical for the same seed."""
    rng = random.Random(seed)
    ids: list[_Sent] = []
    out: list[bytes] = []
    for i in range(count):
        raw, entry = _one(rng, i, seed, ids, attachments=attachments)
        ids.append(entry)
        out.append(raw)
    return out


def stats(mix: list[bytes]) -> MixStats:
    """Counts of each kind of message in ``mix`` (read back from the bytes)."""
    return MixStats(
        messages=len(mix),
        total_bytes=sum(map(len, mix)),
        with_attachment=sum(b"Content-Disposition: attachment" in m for m in mix),
        non_utf8=sum(b"charset=utf-8" not in m for m in mix),
        replies=sum(b"\r\nIn-Reply-To:" in m for m in mix),
        alternative=sum(b"multipart/alternative" in m for m in mix),
    )


def _one(
    rng: random.Random, i: int, seed: int, earlier: list[_Sent], *, attachments: bool
) -> tuple[bytes, _Sent]:
    charset = rng.choice(sorted(FOREIGN)) if rng.random() < CHARSET_SHARE else "utf-8"
    parent = rng.choice(earlier) if earlier and rng.random() < REPLY_SHARE else None
    if parent:
        charset = parent.charset  # the same customer writes the same language
    has_attachment = attachments and rng.random() < ATTACHMENT_SHARE
    is_alternative = rng.random() < ALTERNATIVE_SHARE
    sender = (
        parent.sender if parent else f"customer{rng.randrange(400)}@c{rng.randrange(60)}.example"
    )
    subject, text = _words(rng, charset)
    if parent:
        subject = "Re: " + parent.subject.removeprefix("Re: ")
    message_id = f"<mix{seed}.{i}.{rng.getrandbits(32):08x}@{sender.partition('@')[2]}>"
    headers = _headers(i, sender, subject, charset, message_id, parent)
    body = _text_part(text, charset)
    if is_alternative:
        body = _alternative(rng, body, text, charset)
    if has_attachment:
        body = _mixed(rng, body)
    return headers + body, _Sent(message_id, sender, subject, charset)


def _words(rng: random.Random, charset: str) -> tuple[str, str]:
    topic = rng.choice(TOPICS)
    lines = [rng.choice(SENTENCES) for _ in range(rng.randrange(3, 25))]
    if charset in FOREIGN:
        local_subject, local_line = FOREIGN[charset]
        return f"{local_subject} ({topic})", "\n".join([local_line, *lines])
    return topic, "\n".join(["Hello support,", *lines, "", "Best regards"])


def _headers(  # noqa: PLR0917 - private; one message's header fields
    i: int, sender: str, subject: str, charset: str, message_id: str, parent: _Sent | None
) -> bytes:
    encoded = subject if subject.isascii() else Header(subject, charset).encode()
    lines = [
        f"From: Customer {i} <{sender}>",
        f"To: Support <{SUPPORT}>",
        f"Subject: {encoded}",
        f"Date: {format_datetime(EPOCH + timedelta(minutes=i))}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    if parent:
        lines += [f"In-Reply-To: {parent.message_id}", f"References: {parent.message_id}"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _text_part(text: str, charset: str) -> bytes:
    cte = "7bit" if charset in {"iso-2022-jp", "utf-8"} and text.isascii() else "8bit"
    if charset == "iso-2022-jp":
        cte = "7bit"  # a 7-bit encoding by design (RFC 1468)
    head = (
        f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return head.encode("ascii") + text.replace("\n", "\r\n").encode(charset) + b"\r\n"


def _alternative(rng: random.Random, text_part: bytes, text: str, charset: str) -> bytes:
    boundary = f"alt-{rng.getrandbits(48):012x}"
    paragraphs = "\r\n".join(f"<p>{line}</p>" for line in text.split("\n"))
    html = f"<html><body>{paragraphs}</body></html>"
    html_part = (
        (
            f"Content-Type: text/html; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode("ascii")
        + html.encode(charset, "xmlcharrefreplace")
        + b"\r\n"
    )
    return _multipart("alternative", boundary, [text_part, html_part])


def _mixed(rng: random.Random, body: bytes) -> bytes:
    size = rng.randrange(*ATTACHMENT_BYTES)
    data = base64.encodebytes(rng.randbytes(size)).replace(b"\n", b"\r\n")
    head = (
        "Content-Type: application/pdf; name=report.pdf\r\n"
        "Content-Disposition: attachment; filename=report.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")
    return _multipart("mixed", f"mix-{rng.getrandbits(48):012x}", [body, head + data])


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode("ascii")
    sep = f"--{boundary}\r\n".encode("ascii")
    inner = b"".join(sep + part for part in parts)
    return head + inner + f"--{boundary}--\r\n".encode("ascii")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    print(stats(generate(args.count, args.seed)))


if __name__ == "__main__":
    main()
