"""Real-Valued Perceiver: a Perceiver IO over long real-valued inputs with spectral input views."""

__version__ = "0.1.0"
