"""``[processing] separate_process``: the daemon's process stage runs in a child process."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_service_e2e import samples
from tests.e2e.test_spine import customer_mail, send
from tests.support.daemon import Daemon, Site, wait_for
from tests.support.services import free_port


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (every thread's)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # a thread that just ended
    return found


def _process_child(pid: int) -> int | None:
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"serve_child" in cmdline:
            return child
    return None


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_mail_becomes_a_case_in_the_child_and_sigterm_ends_both(tmp_path: Path) -> None:
    """A case and its ack as usual, metrics counted by the daemon; SIGTERM ends the child too."""
    port = free_port()
    site = Site(tmp_path, extra=f'[http]\nport = {port}\nhost = "127.0.0.1"\n')
    site.write()
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(
        text.replace("[processing]\n", "[processing]\nseparate_process = true\n"),
        encoding="utf-8",
    )
    daemon = Daemon(site).start()
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        child = wait_for(lambda: _process_child(pid))
        send(site, customer_mail("Export is broken", "Nothing happens when I click export."))
        assert wait_for(site.outgoing_messages)
        after = wait_for(
            lambda: (s := samples(port)).get(("mail2case_outbox_sent_total", ()), 0) >= 1 and s
        )
        assert after[("mail2case_messages_processed_total", (("outcome", "processed"),))] == 1
        assert after[("mail2case_message_processing_seconds_count", ())] == 1
    finally:
        assert daemon.stop() == 0
    assert wait_for(lambda: _gone(child), timeout=10)
    events = daemon.log_events()
    processed = [e for e in events if e["event"] == "message.processed"]
    assert len(processed) == 1
    assert processed[0]["case_opened"] is True
    assert not [e for e in events if e["event"] == "stage.pass_failed"]
    assert any(e["event"] == "daemon.stopped" for e in events)
