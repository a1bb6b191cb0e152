"""Straightforward per-query reference paths, as the official code loops (a benchmark and test aid).

Not the official code and not its cost: `benchmarks/bench_official.py` times the official code
itself; these paths only check that batching changes no output (tests/test_reference_paths.py)
and show what the batching alone is worth (`benchmarks/bench_car.py`).

The production stages batch their work; these subclasses do it one item at a time so that
`benchmarks/bench_car.py` can measure the speed-up as a ratio within one run and the tests can
check that both paths give the same masks and scores:

* `ReferenceProposalGenerator`: for every query, a full forward of the visual tower (trunk
  included) and one backward, exactly one gradCAM per pass.
* `ReferenceMaskClassifier`: for every template, every prompted image re-encoded alone, and
  the text embeddings computed without a cache.
* `UncachedTextEncoder`: the proposal texts (queries, background words) embedded anew at every
  call, as the official code does for every image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from car.clip.surgery import encode_cls
from car.clip.text import TextEncoder
from car.methods.car.classifier import MaskClassifier, classifier_preprocess
from car.methods.car.proposals import ProposalGenerator, affinity


class ReferenceProposalGenerator(ProposalGenerator):
    def __call__(self, enc, queries, background, compete: bool = True) -> np.ndarray:
        image = enc.image
        cams, last_attn = [], None
        for k in range(queries.shape[0]):
            fresh = self.encode(image)  # the official code re-runs the trunk for every query
            idx = torch.tensor([k], device=queries.device)
            cam, last_attn = self.cams(fresh, queries, background, idx, compete)
            cams.append(cam)
        cams = torch.cat(cams).float()
        with torch.autocast(cams.device.type, enabled=False):  # as the batched path: refinement in fp32
            return self._refine(cams, affinity([a.to(self.clip.dtype) for a in enc.trunk_attn + [last_attn]]), enc)


class ReferenceMaskClassifier(MaskClassifier):
    def score(self, images: list[np.ndarray], texts: list[list[str]]) -> torch.Tensor:
        summed = 0.0
        for row in texts:  # one template at a time
            with torch.no_grad():
                tokens = self.clip.tokenizer(row).to(self.clip.device)
                text_emb = F.normalize(self.clip.model.encode_text(tokens).float(), dim=-1)  # [J, D]
                image_emb = torch.cat([
                    encode_cls(self.clip.visual,
                               classifier_preprocess(im, self.clip)[None].to(self.clip.device, self.clip.dtype),
                               self.skip_last_block, self.posemb_fp16_round).float()
                    for im in images
                ])  # [K, D]: one forward per mask and template (official Q4)
            summed = summed + (self.clip.logit_scale * image_emb @ text_emb.T).softmax(dim=-1)  # Σ_t P_t [K, J]
        q = summed if len(texts) == 1 else summed.softmax(dim=-1)
        k = len(images)
        return q[torch.arange(k), torch.arange(k)].float().cpu()


class UncachedTextEncoder(TextEncoder):
    """A TextEncoder that forgets: every call embeds its texts again (no memory or disk cache)."""

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self._cache.clear()
        return super().__call__(texts)
