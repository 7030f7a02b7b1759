"""The NumPy stack, driven sample by sample or in closed form."""
