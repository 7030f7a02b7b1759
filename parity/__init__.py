"""keras-parity: sample-by-sample parity between NumPy layers and Keras."""
