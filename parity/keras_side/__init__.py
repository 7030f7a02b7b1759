"""The only importer of TensorFlow and Keras: the model, its fit, its gradients and optimizers, the reference a check compares with."""
