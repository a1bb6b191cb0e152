"""Peer training-free CLIP segmenters in the same harness as CaR (issue #9).

MaskCLIP, SCLIP, ClearCLIP and NACLIP keep CLIP's first L-1 visual blocks and change only the
last one; the patch tokens, projected into the text space, are compared with class-name
embeddings. Everything they share is written once, one idea per module, in pipeline order:

    text.py       class names (the papers' name files or the dataset's) and ImageNet-80 templates
    sliding.py    short-side resize, patch padding, sliding-window (or single-pass) logits
    attention.py  the last-block variants: value path, CSA, q-q, k-k + Gaussian neighbourhood
    features.py   dense patch embeddings through a changed last block (reuses car/clip/surgery.py)
    pamr.py       optional pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020)
    decision.py   logit scale, softmax, synonyms, background threshold -> label map
    segmenter.py  PeerSegmenter: propose (CLIP part) / finish (CPU part), as SemanticCaR
    build.py      the segmenter from `conf/method/<name>.yaml`; the paper's row of published.yaml
"""
