"""``python -m mock_server``: the same as the ``enginy-mock`` command."""

from mock_server.cli import main

main()
