"""The oversight node (EPA): a read-only member of the federation that will run reconciliation.

This first slice is the process itself: its configuration (:mod:`.config`), its gRPC port over
mutual TLS serving the health service (:mod:`.node`), and ``regfed oversight run/check/health``;
its durable run table (:mod:`.runs`, in its own database) and the nightly schedule
(:mod:`.schedule`), not yet wired into :func:`.node.serve`. The reconciliation API comes with
issue 5. It never opens a registry database.
"""
