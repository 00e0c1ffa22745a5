"""Saved models with their cards, prediction of new images, Grad-CAM explanations."""
