"""The maildir transport's fsyncs: each file before its rename, new/ once per settle."""

from __future__ import annotations

import os
import stat
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifications.errors import TemporaryTransportError
from notifications.transports import MaildirTransport, SettlingTransport, SmtpTransport


class Fsyncs:
    """Wraps ``os.fsync``: notes what each call synced, and how many files new/ held then."""

    def __init__(self, maildir: Path, *, is_failing_dirs: bool = False) -> None:
        self.maildir = maildir
        self.is_failing_dirs = is_failing_dirs
        self.calls: list[tuple[str, int]] = []
        self._fsync = os.fsync

    def __call__(self, fd: int) -> None:
        """Note the call (``dir`` or ``file``), then fsync for real (or fail a directory)."""
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        self.calls.append((kind, len(list((self.maildir / "new").iterdir()))))
        if kind == "dir" and self.is_failing_dirs:
            raise OSError(5, "Input/output error")
        self._fsync(fd)


def mail(n: int) -> EmailMessage:
    """A small mail numbered ``n``."""
    msg = EmailMessage()
    msg["To"] = "ann@customer.example"
    msg["Subject"] = f"Mail {n}"
    msg.set_content("Body text.\n")
    return msg


def send(transport: MaildirTransport, n: int) -> None:
    """Hand mail ``n`` to ``transport``."""
    transport.send(mail(n), from_addr="support@example.com", to_addrs=["ann@customer.example"])


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    """An empty maildir's path, its folders made."""
    path = tmp_path / "out"
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True)
    return path


def test_a_batch_costs_one_directory_fsync(maildir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three mails and a settle: three file fsyncs, each before its rename, then one of new/."""
    fsyncs = Fsyncs(maildir)
    monkeypatch.setattr(os, "fsync", fsyncs)
    transport = MaildirTransport(maildir)
    for n in range(3):
        send(transport, n)
    transport.settle()
    # The count of files in new/ at each call: a file is synced while still in tmp/.
    assert fsyncs.calls == [("file", 0), ("file", 1), ("file", 2), ("dir", 3)]
    assert len(list((maildir / "new").iterdir())) == 3


def test_settling_nothing_costs_no_fsync(maildir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A settle with no mail since the last one syncs nothing."""
    fsyncs = Fsyncs(maildir)
    monkeypatch.setattr(os, "fsync", fsyncs)
    transport = MaildirTransport(maildir)
    transport.settle()
    send(transport, 0)
    transport.settle()
    transport.settle()
    assert [kind for kind, _ in fsyncs.calls] == ["file", "dir"]


def test_a_failed_directory_fsync_is_temporary_and_tried_again(
    maildir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsynced new/ may lose the mails: a temporary error; the next settle syncs it."""
    fsyncs = Fsyncs(maildir, is_failing_dirs=True)
    monkeypatch.setattr(os, "fsync", fsyncs)
    transport = MaildirTransport(maildir)
    send(transport, 0)
    with pytest.raises(TemporaryTransportError, match="Input/output error"):
        transport.settle()
    fsyncs.is_failing_dirs = False
    transport.settle()
    assert [kind for kind, _ in fsyncs.calls] == ["file", "dir", "dir"]


def test_only_the_maildir_settles_in_batches() -> None:
    """The maildir is settled once per batch; an SMTP relay has taken each mail on its own."""
    assert isinstance(MaildirTransport(Path("unused")), SettlingTransport)
    assert not isinstance(SmtpTransport("127.0.0.1", 25, starttls=False), SettlingTransport)
