"""rvperceiver.data."""
