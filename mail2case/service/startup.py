"""Start-up failures as one line: the config key, the problem, and the exit code."""

from __future__ import annotations

import errno
import ssl

EX_USAGE = 2  # a configuration problem: fix the config, then start again


class StartupError(Exception):
    """The daemon could not start; ``key`` names the setting to look at."""

    def __init__(self, key: str, problem: str, code: int = EX_USAGE) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
        self.code = code


def listen_error(section: str, host: str, port: int, exc: OSError) -> StartupError:
    """A failure to listen on ``host:port`` ([``section``] host and port), in words."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLError | FileNotFoundError | IsADirectoryError) and (
        section == "smtp"
    ):
        return StartupError(f"{section}.tls_cert_file", f"cannot load the certificate: {exc}")
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"{section}.port", f"{where} is already in use (another instance?)")
    if exc.errno == errno.EACCES:
        problem = f"permission denied listening on {where}"
        if port < 1024:  # noqa: PLR2004 - the privileged port range
            problem += " (ports below 1024 need CAP_NET_BIND_SERVICE or root)"
        return StartupError(f"{section}.port", problem)
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"{section}.host", f"{host} is not an address of this machine")
    return StartupError(f"{section}.port", f"cannot listen on {where}: {exc.strerror or exc}")
