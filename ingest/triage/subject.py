"""Reply and forward prefixes of subject lines ("Re:", "AW:", "Fwd:", "RE[2]:"): one rule."""

from __future__ import annotations

import re

__all__ = ["SUBJECT_PREFIXES", "bare_subject"]

# What mail clients put before a subject when a person replies or forwards, in the
# languages they ship in (Outlook, Thunderbird, Apple Mail, the webmails). Matched
# without regard to case.
SUBJECT_PREFIXES = (
    "re",  # English, and most clients whatever their language
    "fw",  # English (Outlook)
    "fwd",  # English
    "aw",  # German: Antwort
    "wg",  # German: Weitergeleitet
    "antw",  # Dutch: Antwoord
    "doorst",  # Dutch: Doorsturen
    "sv",  # Danish, Norwegian, Swedish: Svar
    "vs",  # Finnish: Vastaus; Norwegian: Videresendt
    "vb",  # Swedish: Vidarebefordrat
    "vl",  # Finnish: Välitetty
    "tr",  # French: Transféré
    "rép",  # French: Réponse
    "rv",  # Spanish: Reenviado
    "res",  # Portuguese: Resposta
    "resp",  # Portuguese: Resposta
    "enc",  # Portuguese: Encaminhado
    "r",  # Italian: Risposta
    "rif",  # Italian: Riferimento
    "odp",  # Polish: Odpowiedź
    "pd",  # Polish: Przekaż dalej
    "ynt",  # Turkish: reply
    "atb",  # Latvian: Atbilde
    "vá",  # Hungarian: Válasz
    "απ",  # Greek: Απάντηση
    "σχετ",  # Greek: Σχετικά
    "πρθ",  # Greek: Προώθηση
    "回复",  # Chinese: reply
    "回覆",  # Chinese (traditional): reply
    "答复",  # Chinese: answer
    "转发",  # Chinese: forward
    "轉寄",  # Chinese (traditional): forward
)
# One prefix: the word, a reply counter some clients add ("Re[2]:", "Re(2):", "Re^2:"),
# and a colon (U+FF1A, the full-width one, in CJK; French typography puts a space before it).
_ONE_PREFIX = (
    r"(?:"
    + "|".join(re.escape(p) for p in sorted(SUBJECT_PREFIXES, key=len, reverse=True))
    + r")\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:\uff1a]"
)
_PREFIXES = re.compile(rf"^\s*(?:{_ONE_PREFIX}\s*)+", re.IGNORECASE)


def bare_subject(subject: str) -> str:
    """``subject`` without the reply and forward prefixes before it ("RE: Fwd: x" is "x").

    Only leading prefixes go: a colon later in the subject is the customer's text. Empty
    when the subject is nothing but prefixes.
    """
    return _PREFIXES.sub("", subject, count=1).strip()
