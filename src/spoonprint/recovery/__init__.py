"""Keeping printers healthy: what can be wrong with a printer path, how to heal it, and the
monitor that watches every printer and applies the strategies."""
