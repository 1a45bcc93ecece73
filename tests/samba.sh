# tests/samba.sh - throw-away Samba AD DC for the tests (sourced by lib.sh)
# (work in progress)
