"""SMTP DATA read in bulk: the end of data, aiosmtpd's two limits and dot-unstuffing.

Pure (no I/O): ``ingest.sources.smtp`` feeds :class:`DataScan` the pieces its StreamReader
returns for ``readuntil(END)`` (or ``read(consumed)`` after a limit overrun) and
stops at the first piece :meth:`DataScan.feed` says ends the data.

The outcome is aiosmtpd 1.4.6's ``SMTP.smtp_DATA``'s, which reads one line per
``readuntil(CRLF)`` and, per line in stream order, decides the first of:

1. the line's content (CRLF excluded) is longer than the StreamReader's limit: the read
   overruns before the line is counted -> "line too long";
2. the bytes so far, this line included, exceed ``data_size_limit`` (if set) -> "too much";
3. the line, CRLF included, is longer than ``line_length_limit`` -> "line too long".

Whichever comes first wins and everything read is dropped (aiosmtpd bounds memory the
same way); the rest of the data is read up to the terminator and thrown away.
"""

from __future__ import annotations

import enum

CRLF = b"\r\n"
END = b".\r\n"


class Outcome(enum.Enum):
    """Where the data stands: fine so far, or which limit it broke first."""

    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()
    TOO_MUCH = enum.auto()


class DataScan:
    """The body of one DATA command, fed piece by piece as the stream gives it.

    Lines are bounded by CRLF only (a bare CR or LF is content). No piece handed to
    the line checks splits a CRLF: a trailing CR is held back until the next piece.
    """

    __slots__ = (
        "_carry",
        "_fits",
        "_line",
        "_parts",
        "_tail",
        "line_limit",
        "outcome",
        "reader_limit",
        "received",
        "size_limit",
        "total",
    )

    def __init__(self, size_limit: int | None, line_limit: int, reader_limit: int) -> None:
        self.size_limit = size_limit or 0  # aiosmtpd: ``if limit and num_bytes > limit``
        self.line_limit = line_limit
        self.reader_limit = reader_limit
        self.outcome = Outcome.NOMINAL
        self.received = 0  # every byte taken from the stream, the terminator included
        self.total = 0  # body bytes checked so far (a held-back CR not yet)
        self._parts: list[bytes] = []
        self._line = 0  # length of the current, unfinished line (held-back CR excluded)
        self._carry = b""  # a trailing CR that may be the first half of a CRLF
        self._tail = b""  # the last two bytes received: is a dot at the start of a line?
        # The longest line content that raises none of the three conditions.
        self._fits = min(line_limit - len(CRLF), reader_limit)

    def feed(self, piece: bytes) -> bool:
        """Take the next bytes of the stream; True when they end with the end-of-data line.

        The terminator can only be the last three bytes of ``piece`` (the reader stops
        at ``END``, dot-CRLF); it is the end of data when its dot starts a line.
        """
        size = len(piece)
        end = piece.endswith(END) and self._dot_starts_line(piece, size)
        self._body(piece[: size - len(END)] if end else piece)
        self.received += size
        self._tail = piece[-2:] if size >= 2 else (self._tail + piece)[-2:]  # noqa: PLR2004
        return end

    def _dot_starts_line(self, piece: bytes, size: int) -> bool:
        dot = size - len(END)  # the dot's index in ``piece``
        if dot >= len(CRLF):
            return piece.endswith(CRLF, 0, dot)
        if self.received == 0 and dot == 0:
            return True  # the very first byte of the data
        return (self._tail + piece[:dot])[-2:] == CRLF

    def _body(self, data: bytes) -> None:
        if self.outcome is not Outcome.NOMINAL:
            return  # past a limit: read to the end, keep nothing
        if self._carry:
            data = self._carry + data
            self._carry = b""
        if data.endswith(b"\r"):
            self._carry = b"\r"
            data = data[:-1]
        if not data:
            return
        segments = data.split(CRLF)
        if len(segments) == 1:  # no line ends here: the current line only grows
            self._line += len(data)
            self.total += len(data)
            if self._line > self.reader_limit:
                self._fail(Outcome.TOO_LONG)
            else:
                self._parts.append(data)
            return
        last = len(segments[-1])
        ends = self.total + len(data) - last  # where the last complete line here ends
        fits = self._fits
        if (
            self._line + len(segments[0]) <= fits
            and max(map(len, segments)) <= fits
            and (not self.size_limit or ends <= self.size_limit)
        ):
            self._parts.append(data)  # the usual case: no line breaks a limit
        elif not self._lines_fit(self._line + len(segments[0]), segments):
            return
        elif last > self.reader_limit:
            self._fail(Outcome.TOO_LONG)
            return
        else:
            self._parts.append(data)
        self.total += len(data)
        self._line = last

    def _lines_fit(self, first: int, segments: list[bytes]) -> bool:
        """The three checks on each complete line in order (the slow path, once at most)."""
        start = self.total - self._line
        contents = [first, *map(len, segments[1:-1])]
        for content in contents:
            size = content + len(CRLF)
            if content > self.reader_limit:
                self._fail(Outcome.TOO_LONG)
            elif self.size_limit and start + size > self.size_limit:
                self._fail(Outcome.TOO_MUCH)
            elif size > self.line_limit:
                self._fail(Outcome.TOO_LONG)
            else:
                start += size
                continue
            return False
        return True

    def _fail(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._parts.clear()
        self._carry = b""

    def content(self) -> bytes:
        """The message with the transparency dots removed (RFC 5321 4.5.2), if NOMINAL."""
        if self.outcome is not Outcome.NOMINAL:
            raise ValueError(f"no content: the data broke a limit ({self.outcome.name})")
        body = b"".join(self._parts)
        self._parts.clear()
        if body.startswith(b"."):
            body = body[1:]
        return body.replace(b"\r\n.", CRLF)
