"""After the segmenter: CaR's dense CRF (crf.py; settings under car.crf) and the optional SAM refinement
(sam/; conf/postprocess)."""
