"""Arktos in Python: a multi-tenant, scale-out cluster manager speaking the Kubernetes API."""

__version__ = "0.1.0"
