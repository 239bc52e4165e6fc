"""Kubemark: many hollow node agents in one process, for scale tests on a small machine."""
