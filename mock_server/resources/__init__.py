"""HTTP resources, one module per family of operations; ``mock_server.app`` wires them to routes."""
