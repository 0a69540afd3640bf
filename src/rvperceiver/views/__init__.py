"""rvperceiver.views."""
