"""CaR on your own image: a segmenter built from a profile, called with an image and phrases.

    from car.api import CarSegmenter

    seg = CarSegmenter.from_profile("voc", backbone="vitb16", overrides=["car.theta=0.5"])
    out = seg("photo.jpg", ["Batman", "Superman"])     # a path, a PIL image or an [H, W, 3] array
    out.label_map      # [H, W] int64 at the image's size: 0 = background, k = phrase k (1-based)
    out.masks          # [K, H, W] bool, one per phrase (out.label_map == k)
    out.scores         # final classifier score per phrase, None where the recurrence pruned it
    out.trace          # per step: the live phrases, their scores, which were kept and pruned
    out.timings        # seconds: read, car (the CLIPs), post (CRF / SAM, painting), total
    video = seg.video("clip.mp4", ["circle"])          # a video, a frame folder or a list of frames (car/api/video.py)

The profile is a dataset config of conf/dataset/ (voc, coco_object, context59, ...: the paper's η,
θ, λ, visual prompts and background words for that kind of picture, and its default backbone) or
`shapes`, the offline default on the embedded tiny CLIP. The config is composed, validated and built
exactly as `evaluate.py` does (car.config.compose, car.settings.validate, car.run.build); the phrases
are one query pass with label ids 1..K. Images above `car.max_pixels` run on a shrunk copy and the
label map comes back at full size (car/methods/pixel_budget.py).
"""

from car.api.images import MAX_PHRASES, Segmentation, clean_phrases, read_image, trace_records
from car.api.profiles import DEFAULT_PROFILE, backbones, check_config, compose_profile, profiles
from car.api.segmenter import CarSegmenter

__all__ = ["DEFAULT_PROFILE", "MAX_PHRASES", "CarSegmenter", "Segmentation", "backbones", "check_config",
           "clean_phrases", "compose_profile", "profiles", "read_image", "trace_records"]
