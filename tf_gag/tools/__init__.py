"""What users run around the library: the tf-gag command, the demo, pictures, TF Serving export, offline assets."""
