"""Reduce a customer's email to the new text that priority rules should read."""

from __future__ import annotations

import re

__all__ = ["first_line", "new_text", "sentences"]

# Where quoted history starts: "On ... wrote:", Outlook's "-----Original Message-----",
# and the German, French, Spanish, Dutch, Italian and Portuguese attribution lines.
_HISTORY_START = re.compile(
    r"^\s*(on\b.{0,200}\bwrote:\s*$|-{2,}\s*original message\s*-{2,}|"
    r"am\b.{0,200}\bschrieb.{0,80}:\s*$|le\b.{0,200}\ba écrit\s*:\s*$|"
    r"el\b.{0,200}\bescribió\s*:\s*$|op\b.{0,200}\bschreef.{0,80}:\s*$|"
    r"il\b.{0,200}\bha scritto\s*:\s*$|em\b.{0,200}\bescreveu\s*:\s*$|_{10,}\s*$)",
    re.IGNORECASE,
)
# A forwarded message is the customer's problem statement, so it is kept; only its
# separator and header lines go (their "Subject:" would count twice).
_FORWARD_NOISE = re.compile(
    r"^\s*(-{2,}\s*forwarded message\s*-{2,}|begin forwarded message:?|"
    r"(from|to|cc|date|sent|subject|von|an|gesendet|betreff|de|à|objet|envoyé|para|asunto|"
    r"enviado|da|oggetto|inviato|van|aan|onderwerp|verzonden)\s*:.*)\s*$",
    re.IGNORECASE,
)
# A closing phrase on its own line ends the message: what follows is the signature.
_CLOSING = re.compile(
    r"^\s*(thanks|thank you|thx|many thanks|thanks in advance|regards|kind regards|"
    r"best regards|warm regards|best|cheers|greetings|sincerely|"
    r"(viele |beste |freundliche )?grüße|(mit )?freundlichen grüßen|gruß|"
    r"danke( und gruß| im voraus)?|vielen dank|bien cordialement|cordialement|"
    r"merci( d'avance| beaucoup)?|salutations|saludos|gracias|atentamente|un saludo|"
    r"met vriendelijke groet(en)?|(vriendelijke )?groeten|alvast bedankt|bedankt|"
    r"(cordiali |distinti )?saluti|grazie( mille)?|obrigad[oa]|atenciosamente|cumprimentos)"
    r"\s*[,.!]?\s*$",
    re.IGNORECASE,
)
_SIGNATURE_DASHES = re.compile(r"^--\s*$")
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|dear|hallo|guten tag|bonjour|hola|buenas|buongiorno|salve|ciao|"
    r"goedemiddag|goedemorgen|hoi|olá|bom dia|boa tarde)\b[^.!?]{0,40}[,!:]?\s*$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^a-z])|\s+-\s+(?=[A-Z])")


def new_text(body: str) -> str:
    """The body without quoted history ('>' lines, 'On ... wrote:' onwards) and signature."""
    kept: list[str] = []
    for line in body.splitlines():
        if _HISTORY_START.match(line) or _SIGNATURE_DASHES.match(line):
            break
        if _CLOSING.match(line) and kept:
            break
        if not line.lstrip().startswith(">") and not _FORWARD_NOISE.match(line):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()


def first_line(text: str) -> str:
    """The first line with content that is not a greeting (where claims like 'P1' sit)."""
    for line in text.splitlines():
        if line.strip() and not _GREETING.match(line):
            return line.strip()
    return ""


def sentences(text: str) -> list[str]:
    """Sentences of ``text``; hard-wrapped lines of one paragraph are joined first."""
    found: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        joined = " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
        found.extend(s.strip() for s in _SENTENCE_END.split(joined) if s.strip())
    return found
