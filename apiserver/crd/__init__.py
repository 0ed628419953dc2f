"""CustomResourceDefinitions: structural schemas (validation with upstream's messages, defaulting, pruning),
the CRD object's own rules, JSONPath for printer columns, and the strategy of a custom resource version.

Pure modules (schema.py, validate.py, jsonpath.py, definition.py, names.py) know nothing of storage; resource.py
builds a Strategy and a Registry from one served version of a CRD.
"""
