import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { Ajv } from "ajv";
import { ajvIssues } from "../../core/ajv-issues.js";
import { ConfigError, type Issue } from "../../core/errors.js";

/*
 * The `frames` config section (MIK-1 frame intake). Written in the style of src/config/schema.ts so that it can be
 * pasted there (or imported as `frames: FramesConfigSchema`); until then `resolveFramesConfig` validates it here
 * with the same ajv settings, and `framesConfigIssues` holds the cross-field rules the schema cannot express.
 */

const R = " Changing it needs a restart.";
const closed = { additionalProperties: false } as const;
const d = (description: string) => ({ description: description + R });
const section = <T extends Record<string, TSchema>>(props: T, description: string) =>
  Type.Object(props, { ...closed, default: {}, description });

/** Largest frame the intake takes: the MIK-1's full resolution. */
export const MAX_CAMERA_PIXELS = 1920 * 1080;

export const FramesConfigSchema = section(
  {
    enabled: Type.Boolean({ default: false, ...d("Take MIK-1 frames (watched directory and/or HTTP push).") }),
    camera_id: Type.String({
      default: "mik1",
      pattern: "^[A-Za-z0-9_.-]{1,64}$",
      ...d("Camera id of frames from the watched directory, and of HTTP pushes that name none."),
    }),
    max_width: Type.Integer({
      default: 1920,
      minimum: 16,
      maximum: 1920,
      ...d("Camera resolution, width in px: wider images are rejected (oversized); bounds sharp's limitInputPixels."),
    }),
    max_height: Type.Integer({
      default: 1080,
      minimum: 16,
      maximum: 1920,
      ...d("Camera resolution, height in px; max_width × max_height must not exceed 1920 × 1080."),
    }),
    max_bytes: Type.Integer({
      default: 16_777_216,
      minimum: 1024,
      maximum: 67_108_864,
      ...d("Largest encoded frame (file or HTTP body) in bytes; larger is rejected (too_many_bytes / HTTP 413)."),
    }),
    formats: Type.Array(Type.Union([Type.Literal("jpeg"), Type.Literal("png")]), {
      default: ["jpeg", "png"],
      minItems: 1,
      uniqueItems: true,
      ...d("Encodings taken; anything else is rejected (wrong_format)."),
    }),
    roi: Type.Optional(
      Type.Object(
        {
          left: Type.Integer({ minimum: 0, description: "Left edge, px from the left of the original." }),
          top: Type.Integer({ minimum: 0, description: "Top edge, px from the top of the original." }),
          width: Type.Integer({ minimum: 1, description: "Width, px." }),
          height: Type.Integer({ minimum: 1, description: "Height, px." }),
        },
        { ...closed, ...d("Region of interest cropped before resizing. Default: the whole frame.") },
      ),
    ),
    model_input: section(
      {
        width: Type.Integer({ default: 224, minimum: 8, maximum: 2048, ...d("Model input width, px.") }),
        height: Type.Integer({ default: 224, minimum: 8, maximum: 2048, ...d("Model input height, px.") }),
        channels: Type.Union([Type.Literal(1), Type.Literal(3)], {
          default: 3,
          ...d("1 = grey, 3 = RGB; the tensor is NCHW float32."),
        }),
        mean: Type.Array(Type.Number(), {
          default: [0.485, 0.456, 0.406],
          minItems: 1,
          maxItems: 3,
          ...d("Per-channel mean subtracted from pixel/255 (one value = every channel)."),
        }),
        std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), {
          default: [0.229, 0.224, 0.225],
          minItems: 1,
          maxItems: 3,
          ...d("Per-channel standard deviation dividing (pixel/255 − mean) (one value = every channel)."),
        }),
        fit: Type.Union([Type.Literal("fill"), Type.Literal("contain"), Type.Literal("cover")], {
          default: "fill",
          ...d("How the ROI is fitted to the input size: stretch, letterbox (black) or crop."),
        }),
      },
      "Vision model input the frames are preprocessed to.",
    ),
    queue_size: Type.Integer({
      default: 8,
      minimum: 1,
      maximum: 1024,
      ...d("Preprocessed frames waiting for the vision model; beyond it the oldest is dropped (drop_oldest)."),
    }),
    max_concurrent_decodes: Type.Integer({
      default: 2,
      minimum: 1,
      maximum: 16,
      ...d("Frames decoded at once (directory and HTTP together)."),
    }),
    max_waiting: Type.Integer({
      default: 16,
      minimum: 0,
      maximum: 1024,
      ...d("HTTP pushes waiting for a decoder; beyond it a push gets 503 busy with Retry-After."),
    }),
    max_future_ms: Type.Integer({
      default: 5000,
      minimum: 0,
      ...d("Largest accepted clock skew of a frame timestamp into the future."),
    }),
    thumbnail: section(
      {
        size: Type.Integer({ default: 160, minimum: 16, maximum: 640, ...d("Longest side of the thumbnail, px.") }),
        quality: Type.Integer({ default: 70, minimum: 1, maximum: 100, ...d("JPEG quality of the thumbnail.") }),
      },
      "Small JPEG kept in LMDB beside each frame's metadata.",
    ),
    retention: section(
      {
        max_age_hours: Type.Number({
          default: 168,
          exclusiveMinimum: 0,
          ...d("Frames stored longer ago than this are deleted (original, thumbnail, metadata)."),
        }),
        max_bytes: Type.Integer({
          default: 10_737_418_240,
          minimum: 1_048_576,
          ...d("Byte budget of stored originals + thumbnails; the oldest frames are deleted first."),
        }),
      },
      "Retention of stored frames under <data_dir>/frames/YYYY-MM-DD/.",
    ),
    directory: section(
      {
        path: Type.Optional(
          Type.String({
            minLength: 1,
            ...d("Watched directory (write-then-rename protocol, see README). Absent: no directory intake."),
          }),
        ),
        rejected_dir: Type.Optional(
          Type.String({ minLength: 1, ...d("Where rejected files go with a .reason.txt. Default: <path>/rejected.") }),
        ),
        rescan_interval_ms: Type.Integer({
          default: 5000,
          minimum: 100,
          maximum: 3_600_000,
          ...d("Full rescan period besides inotify (catches files missed after a restart or an event overflow)."),
        }),
        rejected_max_files: Type.Integer({
          default: 1000,
          minimum: 1,
          ...d("Most rejected files kept; the oldest are deleted first."),
        }),
        orphan_sidecar_after_ms: Type.Integer({
          default: 600_000,
          minimum: 1000,
          ...d("A <name>.json sidecar whose image has not come after this long is moved to rejected/."),
        }),
      },
      "Directory intake.",
    ),
    http: section(
      {
        enabled: Type.Boolean({
          default: true,
          ...d("Serve POST /api/frames (role operator, or an API key named camera:<camera_id>)."),
        }),
      },
      "HTTP push intake.",
    ),
  },
  "MIK-1 frame intake: decode, preprocess for the vision model, store originals and thumbnails.",
);

export type FramesConfig = Static<typeof FramesConfigSchema>;

/** Cross-field rules of the section; `prefix` is the section's JSON pointer. */
export function framesConfigIssues(c: FramesConfig, prefix = "/frames"): Issue[] {
  const issues: Issue[] = [];
  if (c.max_width * c.max_height > MAX_CAMERA_PIXELS)
    issues.push({
      path: `${prefix}/max_height`,
      message: `max_width × max_height = ${c.max_width * c.max_height} px exceeds 1920 × 1080 = ${MAX_CAMERA_PIXELS}`,
    });
  const ch = c.model_input.channels;
  for (const k of ["mean", "std"] as const) {
    const n = c.model_input[k].length;
    if (n !== 1 && n !== ch)
      issues.push({ path: `${prefix}/model_input/${k}`, message: `needs 1 or ${ch} values (channels), got ${n}` });
  }
  const r = c.roi;
  if (r) {
    if (r.left + r.width > c.max_width)
      issues.push({ path: `${prefix}/roi/width`, message: `left + width = ${r.left + r.width} > max_width` });
    if (r.top + r.height > c.max_height)
      issues.push({ path: `${prefix}/roi/height`, message: `top + height = ${r.top + r.height} > max_height` });
  }
  return issues;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const check = ajv.compile(FramesConfigSchema);

/** Validates a `frames` section (filling defaults) or throws a ConfigError naming every wrong field. */
export function resolveFramesConfig(raw: unknown = {}): FramesConfig {
  const value = structuredClone(raw ?? {});
  if (!check(value))
    throw new ConfigError(
      ajvIssues(check.errors).map((i) => ({ ...i, path: `/frames${i.path === "/" ? "" : i.path}` })),
    );
  const c = value as FramesConfig;
  const issues = framesConfigIssues(c);
  if (issues.length) throw new ConfigError(issues);
  return c;
}
