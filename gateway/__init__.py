"""The federation gateway: signed two-phase transfers between registry nodes."""
