"""Evidence: restoration bands, the robustness matrix, real-data checks, Fig. 8 evaluation."""
