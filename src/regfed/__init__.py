"""regfed: a federation of emissions-allowance registries."""

__version__ = "0.1.0"
