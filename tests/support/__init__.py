"""Helpers shared by the tests: local stand-ins for a node, module-planning helpers, driving harden on a lab."""
