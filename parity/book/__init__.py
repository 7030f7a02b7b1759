"""What learners copy, NumPy only: the book's layers and optimizers."""
