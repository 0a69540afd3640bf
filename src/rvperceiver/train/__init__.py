"""rvperceiver.train."""
