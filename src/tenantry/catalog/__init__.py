"""The product catalog: the first tenant resource."""
