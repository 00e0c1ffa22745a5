"""Data quality from a sweep's own cross-validation: suspect labels and outliers among its training images."""
