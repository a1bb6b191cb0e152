"""The closed sets of values the settings allow, defined once: the settings table (car/settings/table.py)
offers them as choices and the code that consumes a value imports its set from here."""

PROMPT_ORDER = ("blur", "gray", "black", "circle", "rectangle", "contour")  # visual prompts, applied in this order
PEER_METHODS = ("maskclip", "sclip", "clearclip", "naclip")  # training-free CLIPs: one changed last block
OTHER_METHODS = ("groupvit",)  # with their own model (method.model), not the backbone's CLIP
METHODS = ("car", *PEER_METHODS, *OTHER_METHODS)  # conf/method/*.yaml; car/methods/registry.py builds each
ATTENTION_KINDS = ("qk", "value", "csa", "qq", "kk_gaussian")  # the peers' last-block attention
PRECISIONS = ("fp32", "bf16", "fp16")  # autocast (peer methods; CaR too)
FP16_WEIGHTS = "fp16_weights"  # the official CUDA mode (Q32): weights and activations float16, no autocast
CAR_PRECISIONS = (*PRECISIONS, FP16_WEIGHTS)  # car.precision
ON_BAD_SAMPLE = ("fail", "skip")  # a missing or broken sample stops the run or is skipped and listed
AVERAGE_RULES = ("gt_present", "union_present")  # classes the mIoU averages over
BG_PROTOCOLS = (None, "car", "standard")  # config values; results use car.metrics.protocol_name()
UNITS = ("object", "sentence")  # referring: one run per object (official) or per sentence
GT_OVERLAP = ("official", "union")  # referring (Q28): where exactly one polygon or any covers
SPLIT_BY = ("unc", "umd", "google")  # referring split families
WEIGHTINGS = ("unit", "sentence")  # referring: each unit counts once, or once per sentence
SAM_VARIANTS = ("hq", "sam")  # postprocess=sam: HQ-SAM or plain SAM
POSTPROCESS = ("none", "sam")  # conf/postprocess names
TASKS = ("semantic", "referring", "video")  # dataset.task
VIDEO_EXPRESSIONS = ("together", "separately")  # video: one CaR run per frame for all expressions, or one each
DAVIS_TASKS = ("unsupervised", "semi-supervised")  # the DAVIS protocols (car/metrics/davis)
# video expression sets: shapes_video's two phrasings, Ref-DAVIS17's two annotators x first-frame / full-video
EXPRESSION_SETS = ("name", "phrase", "annot1", "annot1_full_video", "annot2", "annot2_full_video")
