#!/bin/sh
# `make tools`: Debian's prometheus package, for promtool (the rule tests) and the real-Prometheus test.
#
# Its postinst starts the packaged service (invoke-rc.d under sysvinit, deb-systemd-invoke under systemd)
# with /etc/prometheus/prometheus.yml on port 9090. The suite runs its own Prometheus on a free port and
# wants no other one scraping or holding 9090, so the install runs under a policy-rc.d that denies
# starting services (Debian's mechanism for exactly this, which both helpers honour), unless the machine
# already has one, as Docker images do.
set -eu
command -v promtool >/dev/null && command -v prometheus >/dev/null && exit 0
POLICY=/usr/sbin/policy-rc.d
created=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# Written by fittrack scripts/install_prometheus.sh while it installs prometheus.\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  created=yes
fi
cleanup() { [ -z "$created" ] || rm -f "$POLICY"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
apt-get update
apt-get install -y --no-install-recommends prometheus
# Under systemd the package also enables its unit for the next boot: the suite needs only the binaries.
if [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus.service || true
fi
