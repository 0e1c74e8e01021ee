"""Optics and point spread functions (Eq. 2): the physics every stage builds on."""
