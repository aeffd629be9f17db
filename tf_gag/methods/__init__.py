"""Methods as five parts (sources, backward rules, modifications, interpretations, folds), the kernel, the engine
that runs them, the named presets and the reversed maps."""
