"""The oversight node (EPA): a read-only member of the federation that will run reconciliation.

This first slice is the process itself: its configuration (:mod:`.config`), its gRPC port over
mutual TLS serving the health service (:mod:`.node`), and ``regfed oversight run/check/health``.
The reconciliation API comes with issue 5. It never opens a registry database.
"""
