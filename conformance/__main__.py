"""`python -m conformance` is `enginy-conformance`."""

from conformance.cli import main

main()
