"""Generator targets: one module per artefact family (driver, rtl, hls, vivado)."""
