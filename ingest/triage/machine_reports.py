"""Reports that software sends about mail, which are neither failures nor people.

Each is automatic mail (never acknowledged, RFC 3834 section 2) even without an
``Auto-Submitted`` header, which none of their standards asks for:

- **A delivery report that reports success** (RFC 3464 section 2.3.3): every recipient's
  ``Action`` is ``delivered``, ``relayed`` or ``expanded``. A sender asked for it with
  ``NOTIFY=SUCCESS``, or a relay says it cannot report further. Nothing failed, so it is
  no bounce and must not count against the recipient (``delivery_reports``).
- **A message disposition notification** (RFC 8098), the "read receipt": a
  ``multipart/report`` of report-type ``disposition-notification``, or a
  ``message/disposition-notification`` part. The person only clicked a button.
- **An SMTP TLS report** (RFC 8460 section 5.3): report-type ``tlsrpt``, or the
  ``TLS-Report-Domain`` and ``TLS-Report-Submitter`` headers it requires.
- **A DMARC aggregate report** (RFC 7489 section 7.2.1.1): the subject the RFC gives
  ("Report Domain: ... Submitter: ... Report-ID: ...") *and* an attachment named as it
  gives (``receiver!policy-domain!begin!end[!id].ext``). A customer who forwards one
  with a question writes "Fwd:" before that subject and is a customer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ingest.triage.bounces import walk
from ingest.triage.delivery_reports import delivery_report_actions, is_success, report_type

if TYPE_CHECKING:
    from ingest.mime.parsed import ParsedMail

__all__ = ["machine_report_reason"]
_DMARC_SUBJECT = re.compile(
    r"^\s*report\s+domain:\s*\S+\s+submitter:\s*\S+\s+report-id:", re.IGNORECASE
)
# RFC 7489 7.2.1.1: receiver "!" policy-domain "!" begin "!" end ["!" unique-id] "." ext
_DMARC_FILENAME = re.compile(
    r"^[^!\s/\\]+![^!\s/\\]+!\d{9,11}!\d{9,11}(![^.\s/\\]+)?\.(xml|xml\.gz|gz|gzip|zip)$",
    re.IGNORECASE,
)


def machine_report_reason(mail: ParsedMail) -> str | None:
    """Name the report ``mail`` is (see the module docstring), or None."""
    kind = report_type(mail)
    actions = delivery_report_actions(mail)
    if is_success(actions):
        return f"delivery report without a failure (action: {', '.join(sorted(set(actions)))})"
    if kind == "disposition-notification" or _has_part(mail, "message/disposition-notification"):
        return "message disposition notification (RFC 8098 read receipt)"
    if kind == "tlsrpt" or (
        mail.header("TLS-Report-Domain") and mail.header("TLS-Report-Submitter")
    ):
        return "SMTP TLS report (RFC 8460)"
    if _DMARC_SUBJECT.match(mail.subject) and any(
        _DMARC_FILENAME.match(a.filename.strip()) for a in mail.attachments
    ):
        return "DMARC aggregate report (RFC 7489)"
    return None


def _has_part(mail: ParsedMail, content_type: str) -> bool:
    if mail.tree is not None and any(
        part.get_content_type() == content_type for part in walk(mail.tree)
    ):
        return True
    return any(a.content_type.lower() == content_type for a in mail.attachments)
