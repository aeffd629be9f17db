"""Method parts (modifications, interpretations, aggregations), presets, Grad-CAM, reversal."""
