"""rvperceiver.sim."""
