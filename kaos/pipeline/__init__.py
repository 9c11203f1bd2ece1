"""The pipeline: workspace inputs, planning what reruns, jobs and their states, the catalog."""
