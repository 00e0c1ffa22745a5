"""Images and datasets: safe decoding, datasets and their content hash, the scan, splits, archives,
the example download and the decoded-image cache. Depends on nothing else in `core` but `settings`."""
