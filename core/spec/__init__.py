"""The sweep spec: one typed schema that feeds validation, YAML, the CLI and the Sweep page's form."""
