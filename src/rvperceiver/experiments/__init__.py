"""rvperceiver.experiments."""
