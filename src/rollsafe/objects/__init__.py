"""The versioned object model: fields, histories, registries, tracking."""
