"""spoonprint: a durable print server for restaurant order tickets."""

__version__ = "0.1.0"
