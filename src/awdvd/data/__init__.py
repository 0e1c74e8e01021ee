"""Patches and the background rule, the forward model (synthetic defocus, camera noise), the training stream and dataset files."""
