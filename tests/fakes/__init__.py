"""Faithful stand-ins for platform libraries that cannot run on the test machines."""
