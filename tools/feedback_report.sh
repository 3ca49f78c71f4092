#!/bin/bash
# One command: a SIMULATED feedback log (tools/simulate_feedback.py) into a temporary directory,
# then the report on it into docs/feedback/ and docs/feedback.md (docs/feedback.md says what is
# simulated and how to run the report on a real log instead).
#
#   tools/feedback_report.sh                        # synthetic served stream
#   tools/feedback_report.sh --served-from DIR      # feedback simulated for a real server's
#                                                   # served records (--served_log_sample=1)
# Further arguments go to the simulator (e.g. --requests 2000 --seed 3).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -d /tmp/feedback-sim.XXXXXX)
trap 'rm -rf "$log"' EXIT
/usr/bin/python3 tools/simulate_feedback.py --out "$log/log" "$@"
/usr/bin/python3 tools/feedback_report.py "$log/log" --out docs/feedback --page docs/feedback.md
