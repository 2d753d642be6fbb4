"""One module per toxic; each registers in faults.proxy.toxics.registry."""
