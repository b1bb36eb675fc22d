"""`python -m conformance` is `enginy-conformance`."""

from conformance.cli import main

if __name__ == "__main__":  # not when a worker process of generated testing imports it
    main()
