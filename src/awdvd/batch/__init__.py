"""Many files: the Dask runner, per-file jobs, reruns."""
