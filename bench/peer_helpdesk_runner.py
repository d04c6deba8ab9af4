"""django-helpdesk's side of ``bench.peer_helpdesk``; runs in the peer's own virtualenv.

Not imported by anything in the main virtualenv: ``bench.peer_helpdesk`` runs it as
``bench/.peer-venv/bin/python -m bench.peer_helpdesk_runner COMMAND JSON`` from the
repository root. A throwaway Django project with no settings file: ``settings.configure``
with what django-helpdesk needs, a SQLite database (Django's defaults: rollback journal,
SQLite's ``synchronous=FULL``, autocommit), attachments under a temporary ``MEDIA_ROOT``.

Commands (the JSON argument carries the paths and the mailbox):

* ``migrate``: build the database once (the harness copies it for each run);
* ``process``: add one Queue whose email box is the Dovecot folder, time one
  ``helpdesk.email.process_email()`` over it (what the ``get_email`` management command
  runs from cron), then print one JSON line: the seconds, where each message went, the
  mails sent.
"""

from __future__ import annotations

import imaplib
import json
import logging
import sys
import time
import types
from typing import Any, Literal

QUEUE_SLUG = "bench"
URLCONF = "bench_peer_urls"


def configure(options: dict[str, Any]) -> None:
    """Django settings for the throwaway project, then ``django.setup()``."""
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.sites",
            "django.contrib.humanize",
            "rest_framework",
            "helpdesk",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": options["db"]},
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SITE_ID=1,
        USE_TZ=True,
        MEDIA_ROOT=options.get("media", ""),
        # The acknowledgements are kept in memory and counted: the cheapest way to "send".
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DEFAULT_FROM_EMAIL="support@example.com",
        ROOT_URLCONF=URLCONF,
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {"context_processors": []},
            }
        ],
        # Teams need the pinax-teams app; this benchmark has no use for them.
        HELPDESK_TEAMS_MODE_ENABLED=False,
    )
    django.setup()
    # The ticket URLs in its mails reverse "helpdesk:…": mount its URLs as a site would.
    from django.urls import include, path

    urls = types.ModuleType(URLCONF)
    urls.urlpatterns = [path("helpdesk/", include("helpdesk.urls"))]  # type: ignore[attr-defined]  # a module made here
    sys.modules[URLCONF] = urls


def migrate() -> None:
    """Create every table and load django-helpdesk's email templates."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def plain_imap() -> None:
    """Refuse STARTTLS, so that both sides read the mailbox over plain IMAP.

    django-helpdesk tries STARTTLS first and goes on unencrypted when it fails (it logs a
    warning); mail2case's side of the benchmark uses ``tls = "none"``.
    """

    def refuse(
        _self: imaplib.IMAP4, _ssl_context: object = None
    ) -> tuple[Literal["OK"], list[None]]:
        raise imaplib.IMAP4.error("bench: plain IMAP on both sides")

    imaplib.IMAP4.starttls = refuse  # type: ignore[method-assign, assignment]  # the point: a patched method


def process(options: dict[str, Any]) -> dict[str, Any]:
    """One ``process_email()`` over the folder; the seconds it took and what it stored."""
    from django.core import mail
    from helpdesk.email import process_email
    from helpdesk.models import FollowUp, Queue, Ticket

    Queue.objects.create(
        title="Bench",
        slug=QUEUE_SLUG,
        email_address="support@example.com",
        allow_email_submission=True,
        email_box_type="imap",
        email_box_host=options["host"],
        email_box_port=options["port"],
        email_box_ssl=False,
        email_box_user=options["user"],
        email_box_pass=options["password"],
        email_box_imap_folder=options["folder"],
        email_box_interval=0,
        # Its default: no log. --peer-verbose logs every step to stderr, to see a failure.
        logging_type="debug" if options.get("verbose") else None,
    )
    if options.get("verbose"):
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
    began = time.perf_counter()
    process_email(quiet=not options.get("verbose"))
    seconds = time.perf_counter() - began
    placed = {
        str(mid): int(ticket)
        for mid, ticket in FollowUp.objects.values_list("message_id", "ticket_id")
        if mid
    }
    return {
        "seconds": seconds,
        "tickets": Ticket.objects.count(),
        "followups": FollowUp.objects.count(),
        "placed": placed,
        "mails_sent": len(getattr(mail, "outbox", [])),
    }


def main() -> None:
    """``COMMAND JSON``: run the command, print its result as the last line."""
    command, options = sys.argv[1], json.loads(sys.argv[2])
    configure(options)
    if command == "migrate":
        migrate()
        result: dict[str, Any] = {"migrated": options["db"]}
    elif command == "process":
        plain_imap()
        result = process(options)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
