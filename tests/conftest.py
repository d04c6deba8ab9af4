"""Session fixtures shared by every suite (real servers started on 127.0.0.1)."""

from tests.support.dovecot import dovecot  # noqa: F401 - re-exported as a fixture
from tests.support.postgres import database_url, postgres  # noqa: F401 - re-exported as fixtures
