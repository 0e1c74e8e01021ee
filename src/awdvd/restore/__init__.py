"""Window grid and weights, the defocus map, Richardson-Lucy and its schedules, the blend, tiles, calibration and the pipeline."""
