#!/usr/bin/env bash
# Install the real servers the integration tests start (Dovecot, PostgreSQL), and the
# browser the board's end-to-end test drives (Debian's chromium), as root.
# The tests start their own throwaway instances on 127.0.0.1; nothing runs as a system service.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "test-services: not root; tests needing Dovecot or PostgreSQL will skip if absent" >&2
  exit 0
fi
need=()
dpkg -s dovecot-imapd >/dev/null 2>&1 || need+=(dovecot-imapd)
dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
# tests/e2e/test_board_browser.py: Playwright drives /usr/bin/chromium (no browser download).
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s chromium-driver >/dev/null 2>&1 || need+=(chromium-driver)
# systemd-analyze verifies deploy/mail2case.service. Installing the package in a container
# only adds files: its postinst reloads systemd only when systemd is running (/run/systemd/system).
dpkg -s systemd >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  # policy-rc.d keeps the packages' postinst scripts from starting system services.
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
