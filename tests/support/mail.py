"""Test mail: a plain text message as a customer or an agent writes it, with a unique id."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage


def plain_mail(
    sender: str,
    subject: str,
    body: str,
    *,
    to: str = "support@example.com",
    domain: str = "customer.example",
    return_path: str = "",
    **headers: str,
) -> EmailMessage:
    """A plain message from ``sender``, its Message-ID in ``domain``.

    ``return_path`` comes first, as a delivering server adds it; ``headers`` follow the
    Message-ID, their names with underscores for dashes (``In_Reply_To``).
    """
    msg = EmailMessage()
    if return_path:
        msg["Return-Path"] = return_path
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain=domain)
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg
