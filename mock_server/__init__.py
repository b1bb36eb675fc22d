"""The reference mock of the Enginy Custom CRM API: a Falcon app served by waitress.

``create_app(config, store=..., clock=..., ids=...)`` builds the app; ``MockServer`` serves it;
``FAULTS`` lists the fault profiles. The command line is ``enginy-mock`` (``mock_server.cli``).
"""

from mock_server.app import create_app
from mock_server.config import MockConfig
from mock_server.errors import FaultSpecError, MisconfigurationError, SeedError
from mock_server.faults import FAULTS, Fault
from mock_server.serving import MockServer
from mock_server.storage import MemoryStore, SqliteStore, Store

__all__ = [
    "FAULTS",
    "Fault",
    "FaultSpecError",
    "MemoryStore",
    "MisconfigurationError",
    "MockConfig",
    "MockServer",
    "SeedError",
    "SqliteStore",
    "Store",
    "create_app",
]
