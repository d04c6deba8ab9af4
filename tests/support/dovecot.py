"""A throwaway Dovecot IMAP server on 127.0.0.1, rootless in a temp dir (shared/recipes)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme
from imapclient import IMAPClient

from tests.support.services import free_port, missing

if TYPE_CHECKING:
    from collections.abc import Iterator

DOVECOT = Path("/usr/sbin/dovecot")
USERS = {"alice": "secret", "bob": "hunter2"}

CONFIG = """
base_dir = @DIR@/run
state_dir = @DIR@/state
log_path = @DIR@/dovecot.log
instance_name = dovecot-test-@PORT@
protocols = imap
listen = 127.0.0.1
default_internal_user = @USER@
default_internal_group = @GROUP@
default_login_user = @USER@
first_valid_uid = 1
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u @DIR@/users
}
userdb {
  driver = static
  args = uid=@USER@ gid=@GROUP@ home=@DIR@/mail/%u
}
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {
  inbox = yes
  separator = /
}
ssl = yes
ssl_cert = <@DIR@/cert.pem
ssl_key = <@DIR@/key.pem
# chroot() needs root; mode 0 on anvil-auth-penalty turns the per-IP login penalty off.
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service ipc {
  chroot =
}
service old-stats {
  chroot =
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = @PORT@
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = @TLSPORT@
  }
}
"""


@dataclass
class DovecotServer:
    """Dovecot in ``root``: plain IMAP on ``port``, IMAPS on ``tls_port``, users in USERS."""

    root: Path
    ca_file: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    start_seconds: float = 0.0
    host: str = "127.0.0.1"

    def start(self) -> None:
        """Start in the foreground in its own process group; wait for the greeting."""
        self._write_config()
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.root / "dovecot.conf")],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            **_as_service_user(),  # type: ignore[call-overload]  # user/group/extra_groups only
        )
        self._wait_ready()
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop the whole process group (only the one started here)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self) -> None:
        """Stop and start again on the same ports and directory (mail is kept)."""
        self.stop()
        self.start()

    @property
    def log(self) -> str:
        """Dovecot's own log, for failure messages."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _write_config(self) -> None:
        values = {
            "@DIR@": str(self.root),
            "@PORT@": str(self.port),
            "@TLSPORT@": str(self.tls_port),
            "@USER@": "nobody",
            "@GROUP@": "nogroup",
        }
        if os.geteuid() != 0:
            values["@USER@"] = pwd.getpwuid(os.getuid()).pw_name
            values["@GROUP@"] = _group_name()
        text = CONFIG
        for key, value in values.items():
            text = text.replace(key, value)
        (self.root / "dovecot.conf").write_text(text)
        (self.root / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items()))
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "nobody:nogroup", str(self.root)], check=True)

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.proc.returncode}: {self.log}")
            with suppress(OSError), socket.create_connection((self.host, self.port), 1) as s:
                if s.recv(4).startswith(b"* OK"):
                    return
            time.sleep(0.01)
        raise RuntimeError(f"dovecot not ready in {timeout}s: {self.log}")

    # --- helpers for tests ---------------------------------------------------------

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts the fixture's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @contextmanager
    def client(self, user: str = "alice") -> Iterator[IMAPClient]:
        """A logged-in client over plain IMAP."""
        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        c.login(user, USERS[user])
        try:
            yield c
        finally:
            with suppress(Exception):
                c.logout()

    def new_folder(self, user: str = "alice") -> str:
        """A fresh, empty folder with a unique name, so tests share one server safely."""
        name = f"t{uuid.uuid4().hex[:10]}"
        with self.client(user) as c:
            c.create_folder(name)
        return name

    def append(self, folder: str, raw: bytes, user: str = "alice") -> int:
        """APPEND one message; returns its UID (APPENDUID)."""
        with self.client(user) as c:
            resp = c.append(folder, raw)
        return int(resp.split(b"]")[0].split()[-1])

    def messages(self, folder: str, user: str = "alice") -> dict[int, tuple[set[bytes], bytes]]:
        """UID → (flags, raw bytes) of every message in ``folder``; {} when it is missing."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                return {}
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            data = c.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
        return {uid: (set(d[b"FLAGS"]), bytes(d[b"BODY[]"])) for uid, d in data.items()}

    def recreate(self, folder: str, user: str = "alice") -> None:
        """Delete ``folder`` and create it again: a new UIDVALIDITY, UIDs start over."""
        with self.client(user) as c:
            c.delete_folder(folder)
            c.create_folder(folder)

    def uidvalidity(self, folder: str, user: str = "alice") -> int:
        """The folder's current UIDVALIDITY."""
        with self.client(user) as c:
            return int(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])


def _as_service_user() -> dict[str, object]:
    """Popen arguments that drop root to nobody:nogroup (Dovecot refuses some work as root)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("nobody")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _group_name() -> str:
    import grp  # noqa: PLC0415 - only needed when not root

    return grp.getgrgid(os.getgid()).gr_name


def _certificates(root: Path) -> Path:
    """A throwaway CA and a server cert for localhost and 127.0.0.1; returns the CA file."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(root / "cert.pem"), append=True)
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca_file


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A running Dovecot for the whole session; skipped (or failed in CI) when not installed."""
    if not os.access(DOVECOT, os.X_OK):
        missing(str(DOVECOT), "apt-get install -y dovecot-imapd")
    # Not tmp_path: /tmp/pytest-of-root is 0700 and the server runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="dovecot-"))
    # mkdtemp makes 0700, and the service user (nobody) must enter it.
    os.chmod(root, 0o755)  # noqa: PTH101, S103 - a throwaway test dir, holding no secret
    (root / "mail").mkdir()
    server = DovecotServer(root=root, ca_file=_certificates(root))
    try:
        try:
            server.start()
        except RuntimeError:  # a port taken meanwhile: Dovecot exits at once; retry once
            server.port, server.tls_port = free_port(), free_port()
            server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
