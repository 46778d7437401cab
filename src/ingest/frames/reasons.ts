import { GlassdError } from "../../core/errors.js";

/*
 * Why a frame was refused. Every refusal is counted per reason (FrameIntake.stats().rejected), answered with an
 * HTTP status for a push, and written next to the file in rejected/ for the watched directory.
 *
 *   empty           zero bytes
 *   too_many_bytes  more than frames.max_bytes encoded bytes
 *   wrong_format    not an accepted encoding (magic bytes), or a name/Content-Type that says another one
 *   oversized       width or height beyond the camera resolution (a decompression bomb is caught here, from the
 *                   header, before any pixel is decoded; sharp's limitInputPixels is the second line)
 *   truncated       the encoded data ends early (no PNG IEND / JPEG EOI) and does not decode
 *   corrupt         complete but undecodable (bad Huffman code, bad CRC, impossible header)
 *   roi_outside     the configured ROI does not fit inside this image
 *   bad_metadata    camera / item id / timestamp (query, form or sidecar) missing or invalid
 *   orphan_sidecar  a <name>.json sidecar whose image never came (directory only)
 */
export const FRAME_REJECT_REASONS = [
  "empty",
  "too_many_bytes",
  "wrong_format",
  "oversized",
  "truncated",
  "corrupt",
  "roi_outside",
  "bad_metadata",
  "orphan_sidecar",
] as const;
export type FrameRejectReason = (typeof FRAME_REJECT_REASONS)[number];

const STATUS: Record<FrameRejectReason, number> = {
  empty: 400,
  too_many_bytes: 413,
  wrong_format: 415,
  oversized: 422,
  truncated: 422,
  corrupt: 422,
  roi_outside: 422,
  bad_metadata: 400,
  orphan_sidecar: 400,
};

/** A frame refused for `reason`; `field` names the offending input where there is one (e.g. `ts`). */
export class FrameRejectedError extends GlassdError {
  constructor(
    readonly reason: FrameRejectReason,
    readonly detail: string,
    readonly field?: string,
  ) {
    super(`frame rejected (${reason}): ${detail}`, {
      status: STATUS[reason],
      code: "frame_rejected",
      details: { reason, detail, ...(field ? { field } : {}) },
    });
  }
}
