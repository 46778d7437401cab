"""Vision data: MIK-1 frames → the model's input (full frame resized to SIZE×SIZE) and per-pixel multi-label targets.

Two sources give the same arrays:
  * a ``glassd twin dataset --images N`` directory (``images/images.npy`` uint8 [N,H,W] or [N,H,W,3],
    ``images/masks.npy`` uint8 [N,H,W] bitmask, bit c = class c, ``images/labels.npy`` uint8 [N,8]) — see
    :func:`from_dataset`;
  * the twin's renderer driven directly (:func:`render`): a small Node script (written to the work dir, run with
    ``node --import tsx``) imports ``src/twin/images`` and streams raw frames + bitmasks + defect boxes to us. This is
    how the vision builder gets frames at the MIK-1's own 16:9 aspect (and square ones), hard cases (small,
    low-contrast, overlapping defects) and clean items, whatever image size the dataset command was asked for.

Preprocessing (exactly what the daemon must do; also written into the manifest entry):
  1. decode the frame to 8-bit grey (RGB frames: ITU-R BT.601 luma, round to uint8) — the model has 1 input channel;
  2. resize the FULL frame (no crop, aspect not kept) to SIZE×SIZE with area averaging: output pixel (i, j) is the
     mean of input rows floor(i·H/S) .. ceil((i+1)·H/S)−1 and columns floor(j·W/S) .. ceil((j+1)·W/S)−1
     (= torch ``adaptive_avg_pool2d``; for integer ratios this is plain box averaging). Training also saw bilinear
     antialiased resizes, so other good downscalers (sharp's default) work too, a little less precisely;
  3. x = (v / 255 − mean) / std with the manifest's mean and std; tensor [1, 1, S, S] float32.
Targets at model resolution: pixel (i, j) carries class c when any source pixel of its area-average cell does
(adaptive max pooling of each class mask) — a tiny defect stays visible as at least one pixel.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CLASSES = ["crack", "bubble", "chip", "cloudiness", "deformation", "stain", "stone", "scratch"]
NC = len(CLASSES)
# A defect is "small" when its mask covers at most this many pixels at model resolution.
SMALL_AREA_PX = 12

REPO_ROOT = Path(__file__).resolve().parents[4]

_BRIDGE = r"""
import { renderInspection, renderClean, sampleInspection } from "%(images)s";
const DEFECT_CLASSES = ["crack", "bubble", "chip", "cloudiness", "deformation", "stain", "stone", "scratch"];
const jobs = JSON.parse(process.argv[2]);
const out = process.stdout;
function write(buf) { return new Promise((res) => { if (out.write(buf)) res(); else out.once("drain", res); }); }
for (const job of jobs) {
  for (let k = 0; k < job.n; k++) {
    const itemId = job.first_id + k;
    const event = sampleInspection(job.seed, itemId, { overlap: job.overlap });
    const opts = { width: job.width, height: job.height, seed: job.seed, format: "raw", hard: job.hard,
                   product: job.product, glass: job.glass, color: "gray" };
    // clean items: a deterministic share decided from the item id
    const clean = ((itemId * 2654435761) >>> 0) / 4294967296 < job.clean;
    const r = clean ? await renderClean(event, opts) : await renderInspection(event, opts);
    const n = r.width * r.height;
    const bits = new Uint8Array(n);
    DEFECT_CLASSES.forEach((c, ci) => { const m = r.masks[c]; if (!clean && m) for (let i = 0; i < n; i++) if (m[i]) bits[i] |= 1 << ci; });
    const head = Buffer.from(JSON.stringify({ item_id: itemId, width: r.width, height: r.height, channels: r.channels,
      boxes: r.boxes.map((b) => ({ class: b.class, x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1, area_px: b.area_px, visible: b.visible, hard: b.hard })) }));
    const pre = Buffer.alloc(8); pre.writeUInt32LE(head.length, 0); pre.writeUInt32LE(n * (r.channels + 1), 4);
    await write(Buffer.concat([pre, head, Buffer.from(r.pixels.buffer, r.pixels.byteOffset, r.pixels.byteLength), Buffer.from(bits.buffer)]));
  }
}
"""


@dataclass
class VisionData:
    """Model-resolution arrays: x uint8 [N,S,S], bits uint8 [N,S,S] (bit c = class c), labels uint8 [N,8] (class
    present in the image), small uint8 [N,8] (class present only as small defects), hard [N] str (hard kinds)."""

    x: np.ndarray
    bits: np.ndarray
    labels: np.ndarray
    small: np.ndarray
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def concat(self, other: "VisionData") -> "VisionData":
        src = {"parts": [self.source, other.source]}
        return VisionData(
            np.concatenate([self.x, other.x]),
            np.concatenate([self.bits, other.bits]),
            np.concatenate([self.labels, other.labels]),
            np.concatenate([self.small, other.small]),
            src,
        )


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] → uint8 [..., H, W] with BT.601 luma (what the daemon does for RGB frames)."""
    y = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def resize_frames(frames: np.ndarray, size: int, kernel: str = "area") -> np.ndarray:
    """uint8 [N,H,W] → uint8 [N,size,size] (area averaging, or bilinear with antialias), rounded."""
    t = torch.from_numpy(np.array(frames, copy=True)).float().unsqueeze(1)
    if t.shape[-2:] == (size, size):
        r = t
    elif kernel == "area":
        r = F.adaptive_avg_pool2d(t, (size, size))
    else:
        r = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return r.round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()


def resize_bits(bits: np.ndarray, size: int) -> np.ndarray:
    """uint8 bitmask [N,H,W] → [N,size,size]: a class is on where any source pixel of the cell has it."""
    if bits.shape[-2:] == (size, size):
        return bits.copy()
    t = torch.from_numpy(np.array(bits, copy=True)).long()
    planes = torch.stack([((t >> c) & 1).float() for c in range(NC)], 1)  # [N,8,H,W]
    pooled = F.adaptive_max_pool2d(planes, (size, size)) > 0
    out = torch.zeros(pooled.shape[0], size, size, dtype=torch.long)
    for c in range(NC):
        out |= pooled[:, c].long() << c
    return out.to(torch.uint8).numpy()


def planes(bits: np.ndarray | torch.Tensor) -> torch.Tensor:
    """bitmask [N,S,S] → float targets [N,8,S,S]."""
    t = torch.as_tensor(bits).long()
    return torch.stack([((t >> c) & 1).float() for c in range(NC)], 1)


def from_dataset(ds, size: int, kernel: str = "area") -> VisionData:
    """Reads a ``twin dataset --images`` directory (a common.dataset.Dataset) and brings it to model resolution."""
    imgs = ds.array("images/images.npy")
    masks = ds.array("images/masks.npy")
    labels = np.asarray(ds.array("images/labels.npy"))
    xs, bs = [], []
    for s in range(0, len(imgs), 64):
        im = np.asarray(imgs[s : s + 64])
        if im.ndim == 4:
            im = to_gray(im)
        xs.append(resize_frames(im, size, kernel))
        bs.append(resize_bits(np.asarray(masks[s : s + 64]), size))
    x = np.concatenate(xs) if xs else np.zeros((0, size, size), np.uint8)
    bits = np.concatenate(bs) if bs else np.zeros((0, size, size), np.uint8)
    present = (labels > 0).astype(np.uint8)
    small = _small_from_bits(bits, present)
    return VisionData(x, bits, present, small, {"kind": "twin-dataset", "path": str(ds.path)})


def _small_from_bits(bits: np.ndarray, present: np.ndarray) -> np.ndarray:
    p = planes(bits).sum((2, 3)).numpy()
    return ((p > 0) & (p <= SMALL_AREA_PX) & (present > 0)).astype(np.uint8)


def _node_command() -> list[str]:
    node = os.environ.get("NODE", "node")
    return [node, "--import", "tsx"]


def render(
    work_dir: Path,
    *,
    n: int,
    seed: int,
    size: int,
    frame_sizes: list[tuple[int, int]],
    hard: float = 0.3,
    overlap: float = 0.15,
    clean: float = 0.2,
    first_id: int = 1,
    product: str = "mixed",
    glass: str = "mixed",
    kernels: tuple[str, ...] = ("area", "bilinear"),
    log=None,
) -> VisionData:
    """Renders n frames with the twin's MIK-1 renderer (frame sizes cycled in chunks), resized to model resolution.

    Deterministic in (seed, first_id, n, frame_sizes, ...). ``kernels``: resize kernels, picked per image from a
    seeded generator (the first is the documented one).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    script = work_dir / "render_bridge.mjs"
    images_index = (REPO_ROOT / "src" / "twin" / "images" / "index.ts").as_uri()
    script.write_text(_BRIDGE % {"images": images_index})
    jobs = []
    per = int(np.ceil(n / len(frame_sizes)))
    done = 0
    for w, h in frame_sizes:
        k = min(per, n - done)
        if k <= 0:
            break
        jobs.append(
            dict(n=k, first_id=first_id + done, seed=seed, width=w, height=h, hard=hard, overlap=overlap,
                 clean=clean, product=product, glass=glass)
        )
        done += k
    proc = subprocess.Popen(
        [*_node_command(), str(script), json.dumps(jobs)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    rng = np.random.default_rng(seed + 17)
    xs = np.zeros((n, size, size), np.uint8)
    bs = np.zeros((n, size, size), np.uint8)
    labels = np.zeros((n, NC), np.uint8)
    small = np.zeros((n, NC), np.uint8)
    hard_any = np.zeros(n, np.uint8)
    assert proc.stdout is not None
    try:
        for i in range(n):
            pre = proc.stdout.read(8)
            if len(pre) < 8:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"renderer stopped after {i} of {n} frames: {err[-2000:]}")
            hl, bl = struct.unpack("<II", pre)
            head = json.loads(proc.stdout.read(hl))
            body = proc.stdout.read(bl)
            W, H, C = head["width"], head["height"], head["channels"]
            pix = np.frombuffer(body, np.uint8, W * H * C).reshape(H, W, C) if C > 1 else np.frombuffer(
                body, np.uint8, W * H).reshape(H, W)
            if C > 1:
                pix = to_gray(pix)
            bits = np.frombuffer(body, np.uint8, W * H, offset=W * H * C).reshape(H, W)
            kernel = kernels[int(rng.integers(len(kernels)))]
            xs[i] = resize_frames(pix[None], size, kernel)[0]
            bs[i] = resize_bits(bits[None], size)[0]
            for b in head["boxes"]:
                if b["area_px"] > 0:
                    labels[i, CLASSES.index(b["class"])] = 1
                if b["hard"]:
                    hard_any[i] = 1
            if log and (i + 1) % 500 == 0:
                log(f"vision: rendered {i + 1}/{n} frames")
    finally:
        proc.stdout.close()
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"renderer exited with {rc}: {proc.stderr.read().decode(errors='replace')[-2000:]}")
    # image-level label = class visible at model resolution (a defect that changed no pixel is not labelled)
    present_px = planes(bs).sum((2, 3)).numpy()
    labels = (present_px > 0).astype(np.uint8)
    small = _small_from_bits(bs, labels)
    fp = hashlib.sha256(xs.tobytes() + bs.tobytes()).hexdigest()
    return VisionData(xs, bs, labels, small, {
        "kind": "twin-render", "fingerprint": fp, "n": n, "seed": seed, "first_id": first_id, "frame_sizes": frame_sizes,
        "hard": hard, "overlap": overlap, "clean": clean, "product": product, "glass": glass,
        "kernels": list(kernels), "hard_images": int(hard_any.sum()),
    })
