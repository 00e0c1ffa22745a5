"""Keras models: the backbone registry, offline weights and their converters, heads, the classifier
with its trainable top and cache cut, augmentation and accelerator settings."""
