"""rvperceiver.model."""
