"""Helpers shared by the test suites: ports, servers, the daemon as a process."""
