"""Tasks: end-to-end runs composed of data, text, models, training, decoding and metrics."""
